"""Reports: applications of the library that turn run records into the tables, figures and ledger
under results/."""
