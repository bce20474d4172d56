"""Operations: the concurrency pools, the run summary the CLI prints, and the operators'
alerts (a failed run, a failed blocking check, a week not published in time)."""
