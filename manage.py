#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "binancews.settings")
    from django.core.management import execute_from_command_line

    from binancews.database_check import check_before_command

    check_before_command(sys.argv)  # one line, within seconds, when the database is away
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
