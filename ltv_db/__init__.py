"""ltv_db: a PostgreSQL-native customer-lifetime-value engine."""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # `from ltv_db import LTVClient` without importing redis & co. for every CLI command.
    if name == "LTVClient":
        from ltv_db.client import LTVClient

        return LTVClient
    raise AttributeError(f"module 'ltv_db' has no attribute {name!r}")
