"""``chexplain view``: a local web viewer over result folders (explain, compare, audit, demo).

The server (:mod:`chexplain.view.server`) is the standard library's threaded HTTP server with a
small JSON API; the page is static HTML, CSS and plain JavaScript shipped in ``static/`` (no
build step, no network). Result folders are read as they are, lazily
(:mod:`chexplain.view.folders`, :mod:`chexplain.view.explain_data`,
:mod:`chexplain.view.compare_data`, :mod:`chexplain.view.audit_data`); nothing is written
into them.
"""
