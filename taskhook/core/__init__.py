"""The core both roles use: settings, database, models, rules and the data access."""
