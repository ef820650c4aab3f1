"""The saved workflows as package data (no code): this folder installs as the package ``collage_workflows``.

``*.json`` (editor format) with their ``.jpg`` cards, ``api/*.json`` (API format, the sources) and ``examples/``
(the pictures they read). :func:`collage_app.examples.workflows_folder` finds this folder in a clone, an editable
install or an installed wheel; ``neural-collage run NAME`` runs ``api/NAME.json`` and ``neural-collage examples DIR``
copies the folder out.
"""
