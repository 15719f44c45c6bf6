"""One module per ``damo-collect`` subcommand (HELP, DESCRIPTION, prepare_parser, run)."""
