namespace Quantize.Kernels.Models.Onnx;

/// <summary>Structural checks of an ONNX graph that need no operator knowledge.</summary>
internal static class OnnxGraphChecks
{
    /// <summary>
    /// Every node input (but the empty name of an omitted optional input) and every graph output
    /// must be a graph input, an initializer, a node output, or a value of an enclosing graph.
    /// </summary>
    public static void CheckValuesProduced(GraphProto graph, string source) =>
        CheckGraph(graph, new HashSet<string>(StringComparer.Ordinal), source, "the main graph");

    private static void CheckGraph(GraphProto graph, HashSet<string> outer, string source, string where)
    {
        var known = new HashSet<string>(outer, StringComparer.Ordinal);
        foreach (var input in graph.Input) known.Add(input.Name);
        foreach (var initializer in graph.Initializer) known.Add(initializer.Name);
        foreach (var sparse in graph.SparseInitializer)
        {
            if (sparse.Values is not null) known.Add(sparse.Values.Name);
        }
        foreach (var node in graph.Node)
        {
            foreach (string output in node.Output)
            {
                if (output.Length > 0) known.Add(output);
            }
        }

        foreach (var node in graph.Node)
        {
            foreach (string input in node.Input)
            {
                if (input.Length > 0 && !known.Contains(input))
                    throw new InvalidModelException(source,
                        $"node '{TensorSlot.NodeLabel(node)}' ({node.OpType}) in {where} reads '{input}', which no node, graph input or initializer produces. The model is incomplete; export it again.");
            }
            foreach (var attribute in node.Attribute)
            {
                if (attribute.G is not null)
                    CheckGraph(attribute.G, known, source, $"the '{attribute.Name}' subgraph of node '{TensorSlot.NodeLabel(node)}'");
                foreach (var subgraph in attribute.Graphs)
                    CheckGraph(subgraph, known, source, $"a '{attribute.Name}' subgraph of node '{TensorSlot.NodeLabel(node)}'");
            }
        }

        foreach (var output in graph.Output)
        {
            if (!known.Contains(output.Name))
                throw new InvalidModelException(source,
                    $"graph output '{output.Name}' of {where} is not produced by any node, input or initializer. The model is incomplete; export it again.");
        }
    }
}
