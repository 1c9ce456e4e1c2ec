"""The claims ledger: each published claim about language models, tested on this study's runs."""
