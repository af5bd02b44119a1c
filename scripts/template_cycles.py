"""Fails if the SAM template, once transformed, has resources that depend on each other
in a circle (CloudFormation refuses such a stack at deploy time; sam validate and
cfn-lint let it pass). Offline: the SAM translator ships with aws-sam-cli.

usage: python3 scripts/template_cycles.py template.yaml
"""
import os
import re
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    def load(self):
        return {}


def references(node, found):
    """Every logical id `node` names through Ref, GetAtt or Sub."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else value.split(".")[0])
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                found.update(re.findall(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z0-9.]+)?\}", text))
                if not isinstance(value, str):
                    references(value[1], found)
            else:
                references(value, found)
    elif isinstance(node, list):
        for item in node:
            references(item, found)
    return found


def main(path):
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    text = open(path).read()
    # The translator wants code in S3; where the code lives changes no dependency.
    text = re.sub(r"(?m)^(\s+CodeUri:) \S+$", r"\1 s3://bucket/code.zip", text)
    resources = transform(yaml_parse(text), {}, NoManagedPolicies())["Resources"]
    edges = {}
    for name, resource in resources.items():
        depends = resource.get("DependsOn", [])
        depends = depends if isinstance(depends, list) else [depends]
        found = references(resource.get("Properties", {}), set()) | set(depends)
        edges[name] = sorted(found & set(resources))
    state = {}

    def visit(name, path):
        state[name] = "open"
        for other in edges[name]:
            if state.get(other) == "open":
                return path[path.index(other):] + [other]
            if other not in state:
                cycle = visit(other, path + [other])
                if cycle:
                    return cycle
        state[name] = "done"
        return None

    for name in resources:
        if name not in state:
            cycle = visit(name, [name])
            if cycle:
                sys.exit(f"{path}: circular dependency: {' -> '.join(cycle)}")
    print(f"{path}: no circular dependencies among {len(resources)} resources")


if __name__ == "__main__":
    main(sys.argv[1])
