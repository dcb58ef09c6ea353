#!/usr/bin/env python3
"""Rewrites the end-reason and event-kind tables of ARCHITECTURE.md from
store/src/vocabulary.rs (store/tests/vocabulary.rs checks that they agree)."""
import pathlib
import re

root = pathlib.Path(__file__).resolve().parent.parent
src = (root / "store/src/vocabulary.rs").read_text()
blocks = src.split("\nvocabulary! {")[1:]
names = ["end reasons", "event kinds"]
doc_path = root / "ARCHITECTURE.md"
doc = doc_path.read_text()
for name, block in zip(names, blocks):
    rows = re.findall(r'^\s*\w+ => "(\w+)": "((?:[^"\\]|\\.)*)",', block, re.M)
    table = "| code | meaning |\n|---|---|\n" + "".join(
        "| `%s` | %s |\n" % (code, meaning.replace('\\"', '"')) for code, meaning in rows
    )
    begin = "<!-- %s: generated from store/src/vocabulary.rs -->\n" % name
    end = "<!-- end %s -->" % name
    doc = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: begin + table + end, doc, flags=re.S)
doc_path.write_text(doc)
