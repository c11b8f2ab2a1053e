"""Market-data sources: each turns one kind of data spec into validated ``Bars``."""
