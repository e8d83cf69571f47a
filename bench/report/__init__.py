"""The report layer: records -> frames (collect), tables (md, tex, csv), run-folder outputs, plots."""
