"""ltv_db: a PostgreSQL-native customer-lifetime-value engine."""

__version__ = "0.1.0"
