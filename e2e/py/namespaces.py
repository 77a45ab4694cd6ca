"""Print the namespaces of an Iceberg REST catalog and their properties as JSON, read with
PyIceberg (a client lakeform did not write). Usage: namespaces.py CATALOG_URI"""
import json
import sys

from pyiceberg.catalog.rest import RestCatalog

catalog = RestCatalog("check", uri=sys.argv[1])
out = {}
for ns in catalog.list_namespaces():
    name = ".".join(ns)
    out[name] = catalog.load_namespace_properties(ns)
print(json.dumps(out, sort_keys=True))
