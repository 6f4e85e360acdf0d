"""Executors: where the stages run. ``local`` runs them in this process, one after another;
``ray`` runs each stage as a Ray Data actor pool (:mod:`cda.executors.ray_data`). Both call the
same stage classes, and both give the same records to the export."""
