"""ZStack's wire format, and nothing else: the one place vmexec's server and client read it from.

Pure: imports nothing from the rest of vmexec and no web framework, so the client, the server
and the tests share it without pulling each other in.

- :mod:`.errors`: ErrorCode objects, the codes vmexec answers and their fixed descriptions;
- :mod:`.dates`: ZStack's date format;
- :mod:`.ids`: UUIDs as ZStack writes them;
- :mod:`.classes`: server class names and the ``schema`` map the SDKs read;
- :mod:`.query`: the ``q=`` query language, parsed and evaluated;
- :mod:`.inventories`: inventory field tables and state names;
- :mod:`.exec`: ExecuteGuestVmCommand's enumerations;
- :mod:`.passwords`: how clients send passwords.
"""
