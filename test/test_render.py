"""Thumbnails and contact sheets (``image.render``), as the demo and the evaluation report draw them."""

from __future__ import annotations

import numpy as np

from rtformer_ros.image.render import THUMBNAIL_WIDTH, contact_sheet, thumbnail


def test_thumbnail_keeps_the_aspect_ratio_and_label_ids() -> None:
    labels = np.zeros((480, 640), np.uint8)
    labels[:, 320:] = 7
    small = thumbnail(labels, nearest=True)
    assert small.shape == (240, THUMBNAIL_WIDTH)
    assert set(np.unique(small)) == {0, 7}  # nearest neighbour: no blended ids at the border
    picture = np.full((100, 200, 3), 90, np.uint8)
    assert thumbnail(picture).shape == (160, THUMBNAIL_WIDTH, 3)  # enlarged by default (the demo's GIF)
    kept = thumbnail(picture, enlarge=False)  # evaluation samples never grow
    assert kept.shape == picture.shape and kept is not picture


def test_contact_sheet_places_cells_in_a_grid_under_a_header_with_a_legend() -> None:
    cell = np.full((50, 80, 3), 200, np.uint8)
    rows = [('frame 0', [cell, cell, cell]), ('frame 9', [cell, None, cell])]
    legend = [{'id': i, 'name': f'class {i}', 'color': (i * 40, 0, 0)} for i in range(5)]
    sheet = contact_sheet(rows, ('input', 'mask', 'overlay'), 'title', legend)
    header, legend_h = 48, 12 + 24 * 2  # a title line above the column names; 5 entries, 4 a line
    assert sheet.shape == (header + 2 * 50 + legend_h, 3 * 80, 3)
    assert (sheet[header + 50 + 10, 80 + 40] == 32).all()  # the missing cell stays dark
    assert (sheet[header + 10, 2 * 80 + 40] == 200).all()  # a cell where its row and column say
    untitled = contact_sheet([('@ 1.5', [cell, cell])], ('image', 'ground truth'))
    assert untitled.shape == (26 + 50, 2 * 80, 3)  # no title line, no legend
