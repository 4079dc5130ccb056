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

    /// <summary>
    /// The value of <paramref name="value"/> when it is a one-element float32 constant (an initializer or a Constant
    /// node's <c>value</c> / <c>value_float</c>), else null: what fusions match against (1, 0.5, sqrt 2, epsilon).
    /// </summary>
    public float? ScalarConstant(OnnxModel model, string value)
    {
        if (Producer(value) is { OpType: "Constant" } constant && constant.Attribute.FirstOrDefault(a => a.Name == "value_float") is { } single)
            return single.F;
        return ConstantTensor(value) is { DataType: (int)TensorProto.Types.DataType.Float } tensor && tensor.Dims.Aggregate(1L, (p, d) => p * d) == 1
            ? model.ReadTensor(tensor).ToArray<float>()[0]
            : null;
    }

    /// <summary>The int64 values of <paramref name="value"/> when it is a constant (initializer or Constant node), else null.</summary>
    public long[]? Int64Constant(OnnxModel model, string value) =>
        ConstantTensor(value) is { DataType: (int)TensorProto.Types.DataType.Int64 } tensor ? model.ReadTensor(tensor).ToArray<long>() : null;

    private TensorProto? ConstantTensor(string value) =>
        Initializer(value) ?? (Producer(value) is { OpType: "Constant" } constant && IsDefaultDomain(constant)
            ? constant.Attribute.FirstOrDefault(a => a.Name == "value")?.T
            : null);

    /// <summary>The input of a binary <paramref name="node"/> other than <paramref name="value"/> (null when neither or both are).</summary>
    public static string? OtherInput(NodeProto node, string value) =>
        node.Input.Count != 2 || node.Input[0] == node.Input[1] ? null
        : node.Input[0] == value ? node.Input[1] : node.Input[1] == value ? node.Input[0] : null;
}
