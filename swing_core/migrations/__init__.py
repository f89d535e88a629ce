"""Alembic environment of SwingDesk's schema (driven from code by swing_core.db.init_db)."""
