"""DrawGraph: the nodes, edges and parallel groups of a graph, as drawing sees them."""

from __future__ import annotations

from dataclasses import dataclass, field

from graflow_dist.scheduler.specs import GraphShape


@dataclass
class DrawGraph:
    """Nodes in insertion order, ``>>`` edges, and group id -> member ids.

    A node that is a member of several groups is drawn inside the first one.
    """

    nodes: list[str] = field(default_factory=list)
    edges: list[tuple[str, str]] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_shape(cls, shape: GraphShape) -> DrawGraph:
        graph = cls(nodes=list(shape.nodes))
        seen: set[tuple[str, str]] = set()
        for node_id, node in shape.nodes.items():
            if node.members is not None:
                graph.groups[node_id] = [m for m in node.members if m in shape.nodes]
            own = set(node.members or ())
            for succ in node.successors:
                # A group's edges to its own members (networkx graphs of Graflow's
                # build_graph have them) are the box itself.
                if succ in shape.nodes and succ not in own and (node_id, succ) not in seen:
                    seen.add((node_id, succ))
                    graph.edges.append((node_id, succ))
        return graph

    def parent_group(self) -> dict[str, str]:
        """member -> the group it is drawn in (the first group that lists it)."""
        parent: dict[str, str] = {}
        for group, members in self.groups.items():
            for member in members:
                if member != group and member not in parent and not self._inside(group, member,
                                                                                  parent):
                    parent[member] = group
        return parent

    @staticmethod
    def _inside(group: str, member: str, parent: dict[str, str]) -> bool:
        # True if ``group`` already sits (transitively) inside ``member``: a containment
        # cycle, which would draw a box inside itself.
        current: str | None = group
        while current is not None:
            if current == member:
                return True
            current = parent.get(current)
        return False

    def successors(self) -> dict[str, list[str]]:
        succ: dict[str, list[str]] = {n: [] for n in self.nodes}
        for a, b in self.edges:
            succ[a].append(b)
        return succ

    def find_cycles(self) -> list[list[str]]:
        """The elementary cycles of the ``>>`` edges that its strongly connected parts
        contain, one per part, in node order (enough to show where a loop is)."""
        cycles: list[list[str]] = []
        for component in _strongly_connected(self.nodes, self.successors()):
            succ = self.successors()
            if len(component) == 1 and component[0] not in succ[component[0]]:
                continue
            members = set(component)
            start = component[0]
            path, node = [start], start
            seen = {start}
            while True:  # walk inside the component until we are back at a seen node
                nxt = next(s for s in succ[node] if s in members)
                if nxt in seen:
                    cycles.append(path[path.index(nxt):])
                    break
                path.append(nxt)
                seen.add(nxt)
                node = nxt
        return cycles


def _strongly_connected(nodes: list[str], succ: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components listed in order of their first node."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            recurse = False
            for j in range(i, len(succ[node])):
                nxt = succ[node][j]
                if nxt not in index:
                    work.append((node, j + 1))
                    work.append((nxt, 0))
                    recurse = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if recurse:
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                order = {n: k for k, n in enumerate(nodes)}
                components.append(sorted(component, key=order.__getitem__))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    order = {n: k for k, n in enumerate(nodes)}
    return sorted(components, key=lambda c: order[c[0]])
