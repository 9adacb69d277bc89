"""Thin typer front-ends: flags -> config -> a core call. No loops over records here."""
