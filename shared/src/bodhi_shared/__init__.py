"""What every Bodhi service shares: settings, errors, the job/event contract, Redis names, Postgres."""
