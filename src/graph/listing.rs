//! What `--list-images`, `--list-dependencies` and `--save-dependency` print.

use serde_json::{Map, Value};

use crate::graph::ImageGraph;
use crate::graph::selection::Selection;

/// `N : name` for every selected image, parents first.
pub fn image_list(graph: &ImageGraph, selection: &Selection) -> String {
    graph
        .topological_order()
        .into_iter()
        .filter(|&id| selection.is_matched(id))
        .enumerate()
        .map(|(n, id)| format!("{} : {}\n", n + 1, graph.name(id)))
        .collect()
}

/// kolla's shape: an inner node is `{"name": [children...]}`, a leaf is `"name"`; the top level
/// maps every selected root (an image whose parent is not selected) to its children.
pub fn dependency_tree(graph: &ImageGraph, selection: &Selection) -> Value {
    fn children(graph: &ImageGraph, selection: &Selection, id: usize) -> Vec<Value> {
        let mut kids: Vec<usize> = graph
            .node(id)
            .children
            .iter()
            .copied()
            .filter(|&c| selection.is_matched(c) && graph.node(c).parent == Some(id))
            .collect();
        kids.sort_by(|a, b| graph.name(*a).cmp(graph.name(*b)));
        kids.into_iter()
            .map(|c| {
                let grandchildren = children(graph, selection, c);
                if grandchildren.is_empty() {
                    Value::String(graph.name(c).to_string())
                } else {
                    let mut node = Map::new();
                    node.insert(graph.name(c).to_string(), Value::Array(grandchildren));
                    Value::Object(node)
                }
            })
            .collect()
    }
    let mut top = Map::new();
    for id in graph.topological_order() {
        let parent_selected = graph
            .node(id)
            .parent
            .is_some_and(|p| selection.is_matched(p));
        if selection.is_matched(id) && !parent_selected {
            top.insert(
                graph.name(id).to_string(),
                Value::Array(children(graph, selection, id)),
            );
        }
    }
    Value::Object(top)
}

/// The selected images and their edges as Graphviz dot.
pub fn dot(graph: &ImageGraph, selection: &Selection) -> String {
    let mut out = String::from("digraph {\n    rankdir=LR;\n    node [shape=box];\n");
    let order = graph.topological_order();
    for &id in &order {
        if selection.is_matched(id) {
            out.push_str(&format!("    {:?};\n", graph.name(id)));
        }
    }
    for &id in &order {
        for &dep in &graph.node(id).deps {
            if selection.is_matched(id) && selection.is_matched(dep) {
                out.push_str(&format!(
                    "    {:?} -> {:?};\n",
                    graph.name(dep),
                    graph.name(id)
                ));
            }
        }
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::selection::{Filter, select};
    use crate::graph::tests::graph_of;

    fn setup(patterns: &[&str]) -> (ImageGraph, Selection) {
        let files = [
            ("base", "FROM debian:12"),
            ("openstack-base", "FROM k/base"),
            ("keystone-base", "FROM k/openstack-base"),
            ("keystone", "FROM k/keystone-base"),
            ("keystone-ssh", "FROM k/keystone-base"),
            ("cron", "FROM k/base"),
        ];
        let g = graph_of(&files, "k/", "").unwrap();
        let filter = Filter {
            patterns: patterns.iter().map(|p| p.to_string()).collect(),
            ..Filter::default()
        };
        let s = select(&g, &filter).unwrap();
        (g, s)
    }

    #[test]
    fn list_is_numbered_parents_first() {
        let (g, s) = setup(&["^keystone"]);
        assert_eq!(
            image_list(&g, &s),
            "1 : base\n2 : openstack-base\n3 : keystone-base\n4 : keystone\n5 : keystone-ssh\n"
        );
    }

    #[test]
    fn dependency_tree_has_kollas_shape() {
        let (g, s) = setup(&["^keystone"]);
        assert_eq!(
            dependency_tree(&g, &s).to_string(),
            r#"{"base":[{"openstack-base":[{"keystone-base":["keystone","keystone-ssh"]}]}]}"#
        );
    }

    #[test]
    fn dot_has_selected_nodes_and_edges() {
        let (g, s) = setup(&["cron"]);
        let dot = dot(&g, &s);
        assert!(dot.contains("\"base\" -> \"cron\";"), "{dot}");
        assert!(!dot.contains("keystone"), "{dot}");
    }
}
