"""Dispatch: personalise the once-rendered issue and hand it to a transport behind a ledger."""
