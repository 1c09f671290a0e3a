"""Fast paths: the same answers as :mod:`refimpl.guest.walker`, faster.

Nothing here defines behaviour. Every function is tested equal to the
definition it speeds up, and can be skipped on a first reading.
"""
