"""Human preference labels: a local labelling web app, its SQLite store, clips, agreement."""
