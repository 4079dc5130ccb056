using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;

namespace Quantize.Core.Quantization.Graph;

/// <summary>A float weight the quantizer found, and where it came from.</summary>
/// <param name="Value">The value name a consumer reads (an initializer, or the output of a Constant/Cast/Identity chain).</param>
/// <param name="Root">The stored tensor the values come from.</param>
/// <param name="Dims">The weight's shape.</param>
/// <param name="Values">The weight as float32 (converted from float16/bfloat16/double where a Cast did so).</param>
/// <param name="Chain">The Constant/Cast/Identity nodes between the stored tensor and <paramref name="Value"/>, producer first.</param>
internal sealed record FloatWeight(string Value, TensorProto Root, long[] Dims, float[] Values, IReadOnlyList<NodeProto> Chain);

/// <summary>
/// Finds the constant weights of a graph as exporters write them: initializers, Constant nodes (Paddle2ONNX and
/// others), and either of those behind Cast (to float) or Identity.
/// </summary>
internal sealed class ConstantWeights
{
    private readonly OnnxModel _model;
    private readonly Dictionary<string, TensorProto> _initializers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, NodeProto> _producers = new(StringComparer.Ordinal);
    private readonly HashSet<string> _graphInputs = new(StringComparer.Ordinal);
    private readonly Dictionary<string, FloatWeight?> _cache = new(StringComparer.Ordinal);

    public ConstantWeights(OnnxModel model)
    {
        _model = model;
        foreach (var t in model.Graph.Initializer) _initializers[t.Name] = t;
        foreach (var node in model.Graph.Node)
        {
            foreach (var output in node.Output) _producers[output] = node;
        }
        // An initializer also listed as a graph input (IR < 4) may be overridden at run time: not a constant.
        foreach (var input in model.Graph.Input)
        {
            if (model.Proto.IrVersion >= 4) _graphInputs.Add(input.Name);
        }
    }

    /// <summary>The float weight behind <paramref name="value"/>, or null if it is not a constant float tensor.</summary>
    public FloatWeight? Find(string value)
    {
        if (_cache.TryGetValue(value, out var cached)) return cached;
        var found = Resolve(value, 0);
        // A stored float16/bfloat16/double tensor is a float32 weight only behind a Cast to float (the only Cast
        // followed): read directly, or through Identity alone, its consumer computes in that type.
        if (found is not null && found.Root.DataType != (int)TensorProto.Types.DataType.Float && !found.Chain.Any(n => n.OpType == "Cast"))
            found = null;
        _cache[value] = found;
        return found;
    }

    private FloatWeight? Resolve(string value, int depth)
    {
        if (depth > 8 || value.Length == 0) return null;
        if (_initializers.TryGetValue(value, out var stored))
        {
            return _graphInputs.Contains(value) ? null : FromTensor(value, stored, []);
        }
        if (!_producers.TryGetValue(value, out var node) || node.Domain is not ("" or "ai.onnx")) return null;
        switch (node.OpType)
        {
            case "Constant":
                var attribute = node.Attribute.FirstOrDefault(a => a.Name == "value");
                return attribute?.T is null ? null : FromTensor(value, attribute.T, [node]);
            case "Identity":
            case "Cast" when node.Attribute.Any(a => a.Name == "to" && a.I == (long)TensorProto.Types.DataType.Float):
                var inner = Resolve(node.Input[0], depth + 1);
                return inner is null ? null : inner with { Value = value, Chain = [.. inner.Chain, node] };
            default:
                return null;
        }
    }

    private FloatWeight? FromTensor(string value, TensorProto tensor, IReadOnlyList<NodeProto> chain)
    {
        var type = (TensorProto.Types.DataType)tensor.DataType;
        if (type is not (TensorProto.Types.DataType.Float or TensorProto.Types.DataType.Float16
            or TensorProto.Types.DataType.Bfloat16 or TensorProto.Types.DataType.Double)) return null;
        var data = _model.ReadTensor(tensor);
        float[] values = data.ElementType switch
        {
            TensorElementType.Float32 => data.ToArray<float>(),
            TensorElementType.Float16 => Array.ConvertAll(data.ToArray<Half>(), h => (float)h),
            TensorElementType.BFloat16 => Array.ConvertAll(data.ToArray<ushort>(), b => BitConverter.Int32BitsToSingle(b << 16)),
            TensorElementType.Float64 => Array.ConvertAll(data.ToArray<double>(), d => (float)d),
            _ => throw new InvalidOperationException($"unexpected element type {data.ElementType}"),
        };
        return new FloatWeight(value, tensor, data.Shape.ToArray(), values, chain);
    }
}

/// <summary>Removes what a rewrite left unused: float weights, and the Constant/Cast/Identity nodes that fed them.</summary>
internal static class DeadValues
{
    /// <summary>
    /// Removes the initializers named in <paramref name="candidates"/> and the nodes in <paramref name="candidateNodes"/>
    /// once nothing reads them (no node of the graph or its subgraphs, no graph output). Repeats until stable.
    /// </summary>
    public static void Remove(GraphProto graph, IEnumerable<string> candidates, IEnumerable<NodeProto> candidateNodes)
    {
        var names = new HashSet<string>(candidates, StringComparer.Ordinal);
        var nodes = new HashSet<NodeProto>(candidateNodes, ReferenceEqualityComparer.Instance);
        bool changed = true;
        while (changed)
        {
            changed = false;
            var read = ReadValues(graph);
            foreach (var node in nodes.ToList())
            {
                if (node.Output.All(o => !read.Contains(o)))
                {
                    graph.Node.Remove(node);
                    nodes.Remove(node);
                    foreach (var input in node.Input) names.Add(input);
                    changed = true;
                }
            }
            if (changed) read = ReadValues(graph);
            foreach (var name in names.ToList())
            {
                if (read.Contains(name)) continue;
                var initializer = graph.Initializer.FirstOrDefault(t => t.Name == name);
                if (initializer is null) continue;
                graph.Initializer.Remove(initializer);
                var input = graph.Input.FirstOrDefault(i => i.Name == name);
                if (input is not null) graph.Input.Remove(input);
                names.Remove(name);
            }
        }
    }

    private static HashSet<string> ReadValues(GraphProto graph)
    {
        var read = new HashSet<string>(StringComparer.Ordinal);
        Collect(graph, read);
        foreach (var output in graph.Output) read.Add(output.Name);
        return read;
    }

    private static void Collect(GraphProto graph, HashSet<string> read)
    {
        foreach (var node in graph.Node)
        {
            foreach (var input in node.Input) read.Add(input);
            foreach (var attribute in node.Attribute)
            {
                if (attribute.G is not null) Collect(attribute.G, read);
                foreach (var g in attribute.Graphs) Collect(g, read);
            }
        }
    }
}
