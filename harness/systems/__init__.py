"""Clustered systems, one package each (``galera``, ``rabbitmq``, ``mmm``); the list is ``registry``.

Importing this package imports nothing heavy: each system package's ``__init__`` declares only its
``SystemInfo`` (topology model, capabilities, where its cluster and probe classes live).
"""
