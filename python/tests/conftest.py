import pytest


@pytest.fixture
def tmp_db(tmp_path):
    """The path of a database not yet created, in a fresh temporary directory."""
    return tmp_path / "db"
