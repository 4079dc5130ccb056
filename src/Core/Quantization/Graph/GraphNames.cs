using Quantize.Kernels.Models.Onnx;

namespace Quantize.Core.Quantization.Graph;

/// <summary>New value and node names that collide with nothing in the graph (nor in its subgraphs).</summary>
internal sealed class GraphNames
{
    private readonly HashSet<string> _taken = new(StringComparer.Ordinal);

    public GraphNames(GraphProto graph) => Collect(graph);

    /// <summary><paramref name="wanted"/> if it is free, else <c>wanted_1</c>, <c>wanted_2</c>, ...; the name is then taken.</summary>
    public string Next(string wanted)
    {
        string name = wanted;
        for (int i = 1; !_taken.Add(name); i++) name = $"{wanted}_{i}";
        return name;
    }

    private void Collect(GraphProto graph)
    {
        foreach (var node in graph.Node)
        {
            _taken.Add(node.Name);
            foreach (var output in node.Output) _taken.Add(output);
            foreach (var attribute in node.Attribute)
            {
                if (attribute.G is not null) Collect(attribute.G);
                foreach (var g in attribute.Graphs) Collect(g);
            }
        }
        foreach (var t in graph.Initializer) _taken.Add(t.Name);
        foreach (var i in graph.Input) _taken.Add(i.Name);
        foreach (var o in graph.Output) _taken.Add(o.Name);
        foreach (var v in graph.ValueInfo) _taken.Add(v.Name);
    }
}
