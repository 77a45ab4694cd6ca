//! Dependency graphs of workflow steps.

use std::collections::{BTreeMap, BTreeSet};

/// Order `nodes` (name → dependencies) so that every node comes after its dependencies.
///
/// Errors name an unknown dependency or the nodes of a cycle, in cycle order.
pub fn topological_order<'a>(nodes: &[(&'a str, Vec<&'a str>)]) -> Result<Vec<&'a str>, String> {
    let known: BTreeSet<&str> = nodes.iter().map(|(n, _)| *n).collect();
    for (name, deps) in nodes {
        if let Some(missing) = deps.iter().find(|d| !known.contains(*d)) {
            return Err(format!(
                "step {name:?} depends on {missing:?}, which is not a step of this workflow"
            ));
        }
    }
    let mut remaining: BTreeMap<&str, BTreeSet<&str>> = nodes
        .iter()
        .map(|(n, deps)| (*n, deps.iter().copied().collect()))
        .collect();
    let mut order = Vec::with_capacity(nodes.len());
    // Keep the user's step order among steps that are ready at the same time.
    while !remaining.is_empty() {
        let ready: Vec<&str> = nodes
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| remaining.get(n).is_some_and(BTreeSet::is_empty))
            .collect();
        if ready.is_empty() {
            return Err(format!(
                "steps form a cycle: {}",
                describe_cycle(&remaining)
            ));
        }
        for n in ready {
            remaining.remove(n);
            for deps in remaining.values_mut() {
                deps.remove(n);
            }
            order.push(n);
        }
    }
    Ok(order)
}

/// Walk dependencies from any remaining node until one repeats; print that loop.
fn describe_cycle(remaining: &BTreeMap<&str, BTreeSet<&str>>) -> String {
    let Some(start) = remaining.keys().next() else {
        return String::new();
    };
    let mut path: Vec<&str> = vec![start];
    let mut current = *start;
    loop {
        let Some(next) = remaining.get(current).and_then(|d| d.iter().next()) else {
            return path.join(" -> ");
        };
        if let Some(pos) = path.iter().position(|p| p == next) {
            let mut cycle: Vec<&str> = path[pos..].to_vec();
            cycle.push(next);
            return cycle.join(" -> ");
        }
        path.push(next);
        current = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_a_diamond() {
        let nodes = vec![
            ("join", vec!["a", "b"]),
            ("a", vec!["extract"]),
            ("b", vec!["extract"]),
            ("extract", vec![]),
        ];
        assert_eq!(
            topological_order(&nodes),
            Ok(vec!["extract", "a", "b", "join"])
        );
    }

    #[test]
    fn reports_the_cycle() {
        let nodes = vec![
            ("a", vec!["c"]),
            ("b", vec!["a"]),
            ("c", vec!["b"]),
            ("d", vec![]),
        ];
        let err = topological_order(&nodes).expect_err("cycle");
        assert!(err.contains("a -> c -> b -> a"), "{err}");
    }

    #[test]
    fn reports_unknown_dependencies() {
        let err = topological_order(&[("a", vec!["ghost"])]).expect_err("unknown");
        assert!(err.contains("ghost"), "{err}");
    }
}
