using Quantize.Kernels.Models;
using Quantize.Kernels.Models.TensorFlow;

namespace Quantize.Core.Inspection;

/// <summary>Builds the <see cref="ModelSummary"/> of a TensorFlow GraphDef, as <c>summarize_graph</c> reads one.</summary>
internal static class GraphDefInspector
{
    /// <summary>Ops that nothing consuming them is normal for: they are never reported as outputs.</summary>
    private static readonly HashSet<string> NotOutputs = new(StringComparer.Ordinal) { "Const", "NoOp", "Assign", "Placeholder" };

    /// <summary>Attributes holding a node's output type, most specific first (ArgMax: output_type; Cast: DstT; Requantize: out_type).</summary>
    private static readonly string[] OutputTypeAttributes = ["out_type", "output_type", "DstT", "dtype"];

    public static ModelSummary Summarize(GraphDefModel model)
    {
        var nodes = model.Proto.Node;
        var consumed = new HashSet<string>(StringComparer.Ordinal);
        int controlEdges = 0;
        var ops = new OpHistogram();
        var quantOps = new OpHistogram();
        foreach (var node in nodes)
        {
            ops.Add(node.Op);
            if (QuantizationOps.IsTensorFlow(node.Op)) quantOps.Add(node.Op);
            foreach (string input in node.Input)
            {
                var reference = GraphDefInput.Parse(input);
                consumed.Add(reference.Node);
                if (reference.IsControl) controlEdges++;
            }
        }

        var tensors = StoredTensorTotals.Of(model);
        return new ModelSummary
        {
            Source = model.Source,
            Format = ModelFormat.GraphDef,
            NodeCount = nodes.Count,
            Inputs = nodes.Where(n => n.Op == "Placeholder")
                .Select(n => new ValueSummary(n.Name, TypeName(Attribute(n, "dtype")), Shape(Attribute(n, "shape")?.Shape)))
                .ToList(),
            Outputs = nodes.Where(n => !consumed.Contains(n.Name) && !NotOutputs.Contains(n.Op))
                .Select(n => new ValueSummary(n.Name, OutputTypeName(n), OutputShape(n)))
                .ToList(),
            Ops = ops.ToList(),
            SubgraphOps = [],
            Parameters = tensors.Parameters,
            WeightBytes = tensors.Bytes,
            StoredTensors = tensors.Count,
            ParametersByDtype = tensors.ByDtype(),
            LargestWeights = tensors.Largest(),
            Quantized = new QuantizationSummary(tensors.QuantizedCount, tensors.QuantizedNames, quantOps.ToList()),
            ControlEdges = controlEdges,
        };
    }

    private static AttrValue? Attribute(NodeDef node, string name) => node.Attr.TryGetValue(name, out var value) ? value : null;

    private static string OutputTypeName(NodeDef node)
    {
        foreach (string name in OutputTypeAttributes)
        {
            if (Attribute(node, name) is { ValueCase: AttrValue.ValueOneofCase.Type } attr) return TypeName(attr);
        }
        // Dequantize without a dtype attribute (graphs before TF 2.x) always returns float; its T is the input's type.
        if (node.Op == "Dequantize") return TensorElementType.Float32.DisplayName();
        return TypeName(Attribute(node, "T"));
    }

    private static string TypeName(AttrValue? attr)
    {
        if (attr is not { ValueCase: AttrValue.ValueOneofCase.Type }) return "unknown";
        var type = GraphDefElementTypes.ToElementType(attr.Type);
        if (type != TensorElementType.Undefined) return type.DisplayName();
        // Types we do not model (resource, variant, int4): TensorFlow's own name, e.g. DtResource -> resource.
        string name = attr.Type.ToString();
        return name.StartsWith("Dt", StringComparison.Ordinal) ? name[2..].ToLowerInvariant() : "unknown";
    }

    /// <summary>The first output's shape from <c>_output_shapes</c>, which converters and freezing often record.</summary>
    private static IReadOnlyList<ShapeDimension>? OutputShape(NodeDef node) =>
        Attribute(node, "_output_shapes") is { ValueCase: AttrValue.ValueOneofCase.List } attr && attr.List.Shape.Count > 0
            ? Shape(attr.List.Shape[0])
            : null;

    private static IReadOnlyList<ShapeDimension>? Shape(TensorShapeProto? shape)
    {
        if (shape is null || shape.UnknownRank) return null;
        return shape.Dim
            .Select(d => d.Size >= 0 ? ShapeDimension.Fixed(d.Size)
                : d.Name.Length > 0 ? ShapeDimension.Symbolic(d.Name)
                : ShapeDimension.Unknown)
            .ToList();
    }
}
