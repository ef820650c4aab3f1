"""The applications over the node pack: the ``neural-collage`` command line (:mod:`collage_app.cli`), the graph
editor server (:mod:`collage_app.serve`) and the generator of the node reference (:mod:`collage_app.docs`).

``collage_nodes`` holds node definitions only; everything that parses arguments, prints or serves lives here.
"""
