using Quantize.Kernels.Models.Onnx;

namespace Quantize.Kernels.Runtime.Planning;

/// <summary>Who produces and who reads each value, for pattern matching in graph rewrites.</summary>
internal sealed class GraphView
{
    private readonly Dictionary<string, NodeProto> _producer = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<NodeProto>> _readers = new(StringComparer.Ordinal);
    private readonly HashSet<string> _graphOutputs;
    private readonly Dictionary<string, TensorProto> _initializers;

    public GraphView(OnnxModel model, List<NodeProto> nodes)
    {
        foreach (var node in nodes)
        {
            foreach (var output in node.Output)
            {
                if (output.Length > 0) _producer[output] = node;
            }
            foreach (var input in node.Input)
            {
                if (input.Length == 0) continue;
                if (!_readers.TryGetValue(input, out var list)) _readers[input] = list = [];
                list.Add(node);
            }
        }
        _graphOutputs = model.Graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        _initializers = model.Graph.Initializer.ToDictionary(t => t.Name, StringComparer.Ordinal);
    }

    public NodeProto? Producer(string value) => _producer.GetValueOrDefault(value);

    public IReadOnlyList<NodeProto> Readers(string value) => _readers.TryGetValue(value, out var list) ? list : [];

    /// <summary>The only node reading <paramref name="value"/>, when exactly one does and it is not a graph output.</summary>
    public NodeProto? SoleReader(string value) =>
        !_graphOutputs.Contains(value) && _readers.TryGetValue(value, out var list) && list.Count == 1 ? list[0] : null;

    public bool IsGraphOutput(string value) => _graphOutputs.Contains(value);

    /// <summary>The initializer named <paramref name="value"/>, or null (Constant nodes are folded later, not seen here).</summary>
    public TensorProto? Initializer(string value) => _initializers.GetValueOrDefault(value);

    public static bool IsDefaultDomain(NodeProto node) => node.Domain is "" or "ai.onnx";
}
