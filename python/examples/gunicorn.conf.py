"""Gunicorn settings for ``gunicorn_app.py``.

    SCRIBEDB_APP_DB=bank.db gunicorn -c gunicorn.conf.py gunicorn_app:app

The part that matters for ScribeDB is ``post_fork``: gunicorn's master
process forks its workers, and a database handle does not survive a fork
(an inherited one raises ``scribedb.Forked``). So nothing opens the
database at import time; each worker opens its own handle right after it
is forked, and closes it when it exits. This works with and without
``preload_app``.
"""

bind = "127.0.0.1:8000"  # the command line's --bind wins over this
workers = 4
worker_class = "sync"
control_socket_disable = True  # gunicorn >= 25.1 would make one in $HOME; older ones ignore this


def post_fork(server, worker):
    # Runs in the new worker, before it loads the app. Gunicorn has put
    # its --chdir directory (by default the current one) on sys.path.
    import gunicorn_app

    gunicorn_app.open_database()
    server.log.info("worker %s opened %s", worker.pid, gunicorn_app.database_path())


def worker_exit(server, worker):
    # Runs in the worker as it exits: give back its process slot now,
    # rather than waiting for another process to notice it died.
    import gunicorn_app

    gunicorn_app.close_database()
