"""Everything that runs work for the app away from the page.

- ``compute.run``: the pages' one way to run a task on a model (here, or in a worker);
- ``tasks``: the functions a worker may run, registered by name;
- ``worker`` and ``pool``: sandboxed processes for uploaded models, and who serves which upload;
- ``wire``: the plain-data message format between them (JSON + NPZ, no pickles);
- ``jobs``: the server-wide cap on heavy jobs; ``superseding``: a newer choice stops the running job.

Imports go one way: ``app -> serving -> interpret -> models``; Streamlit is never imported here.
"""
