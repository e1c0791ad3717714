"""Parse Prometheus text exposition from stdin with the official Python client's
parser (Debian python3-prometheus-client); print the families as JSON. A line
the parser rejects makes it raise, so this exits non-zero."""
import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families


def value(v):
    return v if math.isfinite(v) else str(v)


families = [{
    'name': f.name, 'type': f.type, 'help': f.documentation,
    'samples': [{'name': s.name, 'labels': s.labels, 'value': value(s.value)} for s in f.samples],
} for f in text_string_to_metric_families(sys.stdin.read())]
json.dump(families, sys.stdout)
