"""The rules every command follows with the user's files (imports nothing but `cliplit.errors`):

- `reading`: only regular files are opened; traversals (folders, globs, `**`) stop at symlink loops and
  name each input by the path the user named.
- `outputs`: an output never goes over, into or below anything that is read, is checked before the
  expensive work, is written atomically with the umask's permissions, and a folder created for
  outputs that stays empty is removed.
- `boundary`: one error boundary per entry point: one line per failure, quiet on a closed stdout,
  Ctrl-C / SIGTERM finish the write in flight and leave no partial file, even when repeated.
"""
