using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;

namespace Quantize.Core.Inspection;

/// <summary>Builds the <see cref="ModelSummary"/> of an ONNX model.</summary>
internal static class OnnxInspector
{
    public static ModelSummary Summarize(OnnxModel model)
    {
        var proto = model.Proto;
        var graph = model.Graph;

        var initializers = new HashSet<string>(graph.Initializer.Select(t => t.Name), StringComparer.Ordinal);
        foreach (var sparse in graph.SparseInitializer)
        {
            if (sparse.Values is not null) initializers.Add(sparse.Values.Name);
        }

        var ops = new OpHistogram();
        var subgraphOps = new OpHistogram();
        var quantOps = new OpHistogram();
        foreach (var node in graph.Node)
        {
            Count(node, ops, quantOps);
            foreach (var subgraph in Subgraphs(node)) CountSubgraph(subgraph, subgraphOps, quantOps);
        }

        var tensors = StoredTensorTotals.Of(model);
        return new ModelSummary
        {
            Source = model.Source,
            Format = ModelFormat.Onnx,
            NodeCount = graph.Node.Count,
            Onnx = new OnnxDetails(proto.IrVersion, proto.ProducerName, proto.ProducerVersion, Opsets(proto), graph.Name),
            Inputs = graph.Input.Where(v => !initializers.Contains(v.Name)).Select(Describe).ToList(),
            Outputs = graph.Output.Select(Describe).ToList(),
            Ops = ops.ToList(),
            SubgraphOps = subgraphOps.ToList(),
            Parameters = tensors.Parameters,
            WeightBytes = tensors.Bytes,
            StoredTensors = tensors.Count,
            ParametersByDtype = tensors.ByDtype(),
            LargestWeights = tensors.Largest(),
            Quantized = new QuantizationSummary(tensors.QuantizedCount, tensors.QuantizedNames, quantOps.ToList()),
        };
    }

    private static void Count(NodeProto node, OpHistogram ops, OpHistogram quantOps)
    {
        string key = OpHistogram.OnnxKey(node.Domain, node.OpType);
        ops.Add(key);
        if (QuantizationOps.IsOnnx(node.Domain, node.OpType)) quantOps.Add(key);
    }

    private static void CountSubgraph(GraphProto graph, OpHistogram ops, OpHistogram quantOps)
    {
        foreach (var node in graph.Node)
        {
            Count(node, ops, quantOps);
            foreach (var subgraph in Subgraphs(node)) CountSubgraph(subgraph, ops, quantOps);
        }
    }

    private static IEnumerable<GraphProto> Subgraphs(NodeProto node)
    {
        foreach (var attribute in node.Attribute)
        {
            if (attribute.G is not null) yield return attribute.G;
            foreach (var graph in attribute.Graphs) yield return graph;
        }
    }

    /// <summary>The imported opsets, the default domain (written <c>ai.onnx</c>) first, then by domain.</summary>
    private static IReadOnlyList<OpsetVersion> Opsets(ModelProto proto)
    {
        var versions = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var opset in proto.OpsetImport)
        {
            string domain = opset.Domain.Length == 0 ? OpHistogram.OnnxDefaultDomain : opset.Domain;
            versions[domain] = Math.Max(opset.Version, versions.GetValueOrDefault(domain));
        }
        return versions
            .OrderBy(p => p.Key == OpHistogram.OnnxDefaultDomain ? 0 : 1)
            .ThenBy(p => p.Key, StringComparer.Ordinal)
            .Select(p => new OpsetVersion(p.Key, p.Value))
            .ToList();
    }

    private static ValueSummary Describe(ValueInfoProto value) =>
        new(value.Name, TypeName(value.Type), value.Type?.TensorType?.Shape is { } shape ? Shape(shape) : null);

    /// <summary>The lower-case type name: <c>float32</c>, <c>seq(int64)</c>, <c>optional(seq(float32))</c>, <c>map(string,float32)</c>.</summary>
    internal static string TypeName(TypeProto? type) => type?.ValueCase switch
    {
        TypeProto.ValueOneofCase.TensorType => ElementName(type.TensorType),
        TypeProto.ValueOneofCase.SequenceType => $"seq({TypeName(type.SequenceType.ElemType)})",
        TypeProto.ValueOneofCase.OptionalType => $"optional({TypeName(type.OptionalType.ElemType)})",
        TypeProto.ValueOneofCase.MapType => $"map({ElementName(type.MapType.KeyType)},{TypeName(type.MapType.ValueType)})",
        TypeProto.ValueOneofCase.SparseTensorType => $"sparse({ElementName(type.SparseTensorType.ElemType)})",
        _ => Unknown,
    };

    private static string ElementName(TypeProto.Types.Tensor tensor) => tensor.HasElemType ? ElementName(tensor.ElemType) : Unknown;

    private static string ElementName(int onnxType)
    {
        var type = OnnxElementTypes.ToElementType(onnxType);
        return type == TensorElementType.Undefined ? Unknown : type.DisplayName();
    }

    private const string Unknown = "unknown";

    private static IReadOnlyList<ShapeDimension> Shape(TensorShapeProto shape) => shape.Dim
        .Select(d => d.ValueCase switch
        {
            TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue => ShapeDimension.Fixed(d.DimValue),
            TensorShapeProto.Types.Dimension.ValueOneofCase.DimParam when d.DimParam.Length > 0 => ShapeDimension.Symbolic(d.DimParam),
            _ => ShapeDimension.Unknown,
        })
        .ToList();
}
