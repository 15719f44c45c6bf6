"""Shell completion of ``damo-analyze`` and ``damo-collect`` through argcomplete.

The shell's completion function (``eval "$(register-python-argcomplete damo-analyze)"``,
README) runs the command with ``_ARGCOMPLETE`` set; :func:`autocomplete` then builds
every parser (they are normally built only for the subcommand used, see
``DashAwareParser.defer``), lets argcomplete print the candidates and exit. Without
that variable it returns at once, so a normal run pays one environment lookup. Without
argcomplete (the ``completion`` extra) the shell just offers no candidate.
"""
import argparse
import os


def prepare_all(parser):
    """Add the deferred arguments of ``parser`` and of every subcommand parser under it
    (nested ones included: ``report`` adds its kinds when prepared)."""
    ensure = getattr(parser, "ensure_prepared", None)
    if ensure is not None:
        ensure()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                prepare_all(sub)


def autocomplete(parser):
    """Answer a shell completion request for ``parser`` and exit, when there is one."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    try:
        import argcomplete
    except ImportError:
        return
    prepare_all(parser)
    argcomplete.autocomplete(parser)
