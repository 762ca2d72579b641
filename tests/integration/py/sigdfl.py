#!/usr/bin/env python3
"""sigdfl.py CMD ARGS...: exec CMD with SIGINT and SIGQUIT at their default action.

A non-interactive shell starts background jobs with SIGINT ignored, and an ignored signal
stays ignored across exec; this undoes that so `kill -INT` acts like Ctrl-C."""
import os
import signal
import sys

signal.signal(signal.SIGINT, signal.SIG_DFL)
signal.signal(signal.SIGQUIT, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])
