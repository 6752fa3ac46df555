"""The exceptions rsr raises for problems a user can fix."""


class RsrError(Exception):
    "An error the user can fix; the CLI shows it without a traceback."


class InputError(RsrError):
    "Bad input data: a file, line or field that cannot be used."


class ConfigError(RsrError):
    "A bad option, recipe key or plugin name."


class LedgerError(RsrError):
    "The database cannot be opened or is not an rsr ledger."
