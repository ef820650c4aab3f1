"""The applications over the node pack: the ``neural-collage`` command line (:mod:`collage_app.cli`, whose
sub-command modules :mod:`.mapping`, :mod:`.serve` and :mod:`.examples` it imports, never the reverse), batch runs
(:mod:`collage_app.batch`: ``--over`` specs, the manifest, Ray), the ``--set`` grammar (:mod:`.overrides`), what the
commands share (:mod:`.common`, :mod:`.errors`), the graph editor server (:mod:`collage_app.serve`) and the
generator of the node reference (:mod:`collage_app.docs`).

``collage_nodes`` holds node definitions only; everything that parses arguments, prints, serves or maps a workflow
over many inputs lives here.
"""
