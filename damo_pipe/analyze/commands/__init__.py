"""One module per ``damo-analyze`` subcommand (HELP, DESCRIPTION, prepare_parser, run)."""
