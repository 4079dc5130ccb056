using Quantize.Core.Quantization.Graph;
using Quantize.Kernels.Models.Onnx;
using DataType = Quantize.Kernels.Models.Onnx.TensorProto.Types.DataType;

namespace Quantize.Core.Quantization;

/// <summary>
/// The <c>int4</c> mode for ONNX: every MatMul whose second input is a constant 2-D float weight <c>[K, N]</c> gets
/// 4-bit weights in blocks along K (<see cref="QuantizationOptions.Int4BlockSize"/>), written either as ONNX
/// Runtime's <c>com.microsoft</c> MatMulNBits (the default) or as standard ONNX: an int4 initializer, a blocked
/// DequantizeLinear (opset 21) and the original MatMul. Activations stay float. A weight read by several MatMuls is
/// quantized once; the float weights (and the Constant/Cast/Identity nodes that fed them) are dropped.
/// </summary>
public static class Int4Quantizer
{
    private const int StandardInt4Opset = 21; // DequantizeLinear with int4 and block_size
    private const string MicrosoftDomain = "com.microsoft";

    /// <summary>Quantizes a copy of <paramref name="source"/>; the source is not changed.</summary>
    /// <exception cref="ArgumentException">The options are invalid (for example the block size).</exception>
    public static QuantizationResult Quantize(OnnxModel source, QuantizationOptions options)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var context = new QuantizationContext(source, options with { Mode = QuantizationMode.Int4 });
        Apply(context);
        return context.Finish();
    }

    internal static void Apply(QuantizationContext context)
    {
        var options = context.Options;
        var proto = context.Proto;
        var graph = context.Graph;
        var weights = context.Weights;
        var names = context.Names;
        long opset = context.Opset;
        bool standard = options.Int4Format == Int4Format.DequantizeLinear;

        var decisions = new List<NodeDecision>();
        var rewritten = new List<NodeProto>();
        // One quantized form per stored tensor, however many MatMuls (or Cast/Identity chains) read it.
        var written = new Dictionary<TensorProto, WrittenWeight>(ReferenceEqualityComparer.Instance);
        var replaced = new List<FloatWeight>();

        foreach (var node in graph.Node)
        {
            if (node.OpType != "MatMul" || node.Domain is not ("" or "ai.onnx") || node.Input.Count != 2)
            {
                rewritten.Add(node);
                continue;
            }
            string label = node.Name.Length > 0 ? node.Name : node.Output.FirstOrDefault() ?? node.OpType;
            var weight = weights.Find(node.Input[1]);
            string? skip = context.RefuseByOptions(node) ?? Refuse(weight, options) ?? (standard && opset < StandardInt4Opset
                ? $"standard int4 needs opset {StandardInt4Opset}; the model imports {opset}: use the MatMulNBits format"
                : null);
            if (skip is not null)
            {
                decisions.Add(new NodeDecision(label, node.OpType, false, skip));
                rewritten.Add(node);
                continue;
            }

            bool shared = written.TryGetValue(weight!.Root, out var w);
            if (!shared)
            {
                w = Write(weight, options, names, graph);
                written[weight.Root] = w;
                if (standard) rewritten.Add(w.Dequantize!); // before its first reader
            }
            replaced.Add(weight);
            if (standard)
            {
                node.Input[1] = w!.Dequantize!.Output[0];
                rewritten.Add(node);
            }
            else
            {
                string[] inputs = w!.ZeroPoints is null ? [node.Input[0], w.Values, w.Scales] : [node.Input[0], w.Values, w.Scales, w.ZeroPoints];
                rewritten.Add(OnnxBuild.Node("MatMulNBits", names.Next(label + "_Q4"), inputs, [node.Output[0]], MicrosoftDomain)
                    .With("K", w.Depth).With("N", w.Columns).With("bits", 4).With("block_size", options.Int4BlockSize));
            }
            decisions.Add(new NodeDecision(label, node.OpType, true,
                $"int4 {(standard ? "DequantizeLinear (opset 21)" : "MatMulNBits")}, block {options.Int4BlockSize}, "
                + $"{(options.Int4Symmetric ? "symmetric" : "asymmetric")}{(shared ? ", weight shared: quantized once" : "")}"));
        }

        graph.Node.Clear();
        graph.Node.AddRange(rewritten);
        if (written.Count > 0 && !standard) OnnxBuild.EnsureOpset(proto, MicrosoftDomain, 1);
        // Stored initializers and the Constant/Cast/Identity chains behind them go once nothing reads them.
        DeadValues.Remove(graph,
            replaced.Where(r => r.Chain.Count == 0 || r.Chain[0].OpType != "Constant").Select(r => r.Root.Name).Distinct(StringComparer.Ordinal),
            replaced.SelectMany(r => r.Chain).Distinct(ReferenceEqualityComparer.Instance).Cast<NodeProto>());
        context.Decisions.AddRange(decisions);
        if (decisions.Count == 0)
        {
            int others = graph.Node.Count(n => n.OpType is "Conv" or "Gemm" or "ConvTranspose");
            context.Notes.Add($"int4 quantizes MatMul weights only and the model has no MatMul{(others > 0 ? $" ({others} Conv/Gemm nodes stay float: use the static or dynamic mode for them)" : "")}");
        }
    }

    /// <summary>Why this weight stays float, or null if it can be quantized.</summary>
    private static string? Refuse(FloatWeight? weight, QuantizationOptions options)
    {
        if (weight is null) return "the weight is not a constant float tensor";
        if (weight.Dims.Length != 2) return $"the weight is {weight.Dims.Length}-D, not 2-D";
        if (weight.Dims[0] * weight.Dims[1] == 0) return "the weight is empty";
        if (weight.Dims[0] * weight.Dims[1] < options.MinimumSize) return $"the weight has fewer than {options.MinimumSize} elements";
        if (weight.Dims[0] > int.MaxValue / 2 || weight.Dims[1] > int.MaxValue / 2 || weight.Values.Length != weight.Dims[0] * weight.Dims[1])
            return "the weight is too large for 4-bit blocks";
        foreach (float v in weight.Values)
        {
            if (!float.IsFinite(v)) return "the weight holds NaN or infinity";
        }
        return null;
    }

    /// <summary>Quantizes one weight and adds its initializers (and, for the standard format, its DequantizeLinear node).</summary>
    private static WrittenWeight Write(FloatWeight weight, QuantizationOptions options, GraphNames names, GraphProto graph)
    {
        int k = (int)weight.Dims[0], n = (int)weight.Dims[1], bs = options.Int4BlockSize;
        var blocks = Int4Blocks.Quantize(weight.Values, k, n, bs, options.Int4Symmetric);
        string baseName = weight.Value;
        string values = names.Next(baseName + "_Q4"), scales = names.Next(baseName + "_scales");
        string? zeroPoints = options.Int4Symmetric ? null : names.Next(baseName + "_zero_points");
        int blocksPerColumn = blocks.BlocksPerColumn;

        if (options.Int4Format == Int4Format.MatMulNBits)
        {
            graph.Initializer.Add(OnnxBuild.Tensor(values, DataType.Uint8, [n, blocksPerColumn, bs / 2], blocks.MatMulNBitsWeights()));
            graph.Initializer.Add(OnnxBuild.Floats(scales, [n, blocksPerColumn], blocks.MatMulNBitsScales()));
            if (zeroPoints is not null)
                graph.Initializer.Add(OnnxBuild.Tensor(zeroPoints, DataType.Uint8, [n, (blocksPerColumn + 1) / 2], blocks.MatMulNBitsZeroPoints()));
            return new WrittenWeight(k, n, values, scales, zeroPoints, null);
        }

        graph.Initializer.Add(OnnxBuild.Tensor(values, DataType.Int4, [k, n], blocks.Int4Values()));
        graph.Initializer.Add(OnnxBuild.Floats(scales, [blocksPerColumn, n], blocks.BlockRowScales()));
        if (zeroPoints is not null)
            graph.Initializer.Add(OnnxBuild.Tensor(zeroPoints, DataType.Int4, [blocksPerColumn, n], blocks.Int4ZeroPoints()));
        string[] inputs = zeroPoints is null ? [values, scales] : [values, scales, zeroPoints];
        var dequantize = OnnxBuild.Node("DequantizeLinear", names.Next(baseName + "_DequantizeLinear"), inputs, [names.Next(baseName + "_dequantized")])
            .With("axis", 0).With("block_size", bs);
        return new WrittenWeight(k, n, values, scales, zeroPoints, dequantize);
    }

    /// <summary>The names a quantized weight was written under; <paramref name="Dequantize"/> only for the standard format.</summary>
    private sealed record WrittenWeight(int Depth, int Columns, string Values, string Scales, string? ZeroPoints, NodeProto? Dequantize);
}
