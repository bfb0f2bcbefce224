//! Open-file-description byte-range locks (`F_OFD_SETLK`).
//!
//! OFD locks belong to an open file description, not to a process: the kernel
//! drops them when the last descriptor of that description closes, which
//! includes the death of the process by any signal. Two handles on the same
//! file in one process hold separate descriptions, so closing one never drops
//! the other's locks (the classic pitfall of process-associated `F_SETLK`
//! locks), and they conflict with each other like two processes would.
//!
//! The locked bytes are names, not data: ranges may lie beyond the end of the
//! file and never interact with the memory mapping.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Lock kind requested on a byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Shared,
    Exclusive,
}

fn flock(kind: libc::c_short, byte: u64) -> libc::flock {
    // SAFETY: `flock` is a plain C struct for which all-zero bytes are valid;
    // OFD locks require `l_pid` to be zero.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = byte as libc::off_t;
    fl.l_len = 1;
    fl
}

fn raw_kind(kind: Kind) -> libc::c_short {
    match kind {
        Kind::Shared => libc::F_RDLCK as libc::c_short,
        Kind::Exclusive => libc::F_WRLCK as libc::c_short,
    }
}

fn fcntl(file: &File, cmd: libc::c_int, fl: &mut libc::flock) -> io::Result<()> {
    loop {
        // SAFETY: `fl` is a valid, exclusively borrowed `flock` for the
        // duration of the call and `file` keeps the descriptor open.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), cmd, fl as *mut libc::flock) };
        if rc != -1 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Try to take a lock on `byte`; `Ok(false)` when another description holds a
/// conflicting lock. Taking a lock the description already holds converts it
/// atomically (e.g. exclusive to shared).
pub(crate) fn try_lock(file: &File, byte: u64, kind: Kind) -> io::Result<bool> {
    let mut fl = flock(raw_kind(kind), byte);
    match fcntl(file, libc::F_OFD_SETLK, &mut fl) {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Take a lock on `byte`, waiting as long as it takes.
pub(crate) fn lock_wait(file: &File, byte: u64, kind: Kind) -> io::Result<()> {
    let mut fl = flock(raw_kind(kind), byte);
    fcntl(file, libc::F_OFD_SETLKW, &mut fl)
}

/// Release this description's lock on `byte`.
pub(crate) fn unlock(file: &File, byte: u64) -> io::Result<()> {
    let mut fl = flock(libc::F_UNLCK as libc::c_short, byte);
    fcntl(file, libc::F_OFD_SETLK, &mut fl)
}

/// Whether a description other than `file`'s holds any lock on `byte`.
pub(crate) fn held_by_other(file: &File, byte: u64) -> io::Result<bool> {
    let mut fl = flock(libc::F_WRLCK as libc::c_short, byte);
    fcntl(file, libc::F_OFD_GETLK, &mut fl)?;
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_descriptions_in_one_process_conflict_and_stay_independent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let a = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .unwrap();
        let b = File::options().read(true).write(true).open(&path).unwrap();
        assert!(try_lock(&a, 7, Kind::Exclusive).unwrap());
        assert!(!try_lock(&b, 7, Kind::Exclusive).unwrap());
        assert!(!try_lock(&b, 7, Kind::Shared).unwrap());
        assert!(held_by_other(&b, 7).unwrap());
        assert!(!held_by_other(&a, 7).unwrap(), "own lock is not 'other'");
        // A third description on the same file closing must not drop a's lock.
        let c = File::options().read(true).write(true).open(&path).unwrap();
        drop(c);
        assert!(held_by_other(&b, 7).unwrap());
        // Downgrade to shared lets b share it.
        assert!(try_lock(&a, 7, Kind::Shared).unwrap());
        assert!(try_lock(&b, 7, Kind::Shared).unwrap());
        unlock(&a, 7).unwrap();
        unlock(&b, 7).unwrap();
        assert!(!held_by_other(&a, 7).unwrap());
        drop(a);
        assert!(try_lock(&b, 7, Kind::Exclusive).unwrap());
    }
}
