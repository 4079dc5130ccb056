using Quantize.Core.Quantization.Graph;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;

namespace Quantize.Core.Quantization;

/// <summary>
/// The <c>dynamic</c> mode for ONNX, in the pattern ONNX Runtime's quantize_dynamic writes: every MatMul (and Gemm)
/// with a constant 2-D float weight becomes DynamicQuantizeLinear on the activation (once per activation tensor),
/// MatMulInteger with the 8-bit weight (per-column scales by default), Cast to float and a Mul by the product of the
/// scales; Conv becomes the same around ConvInteger; embedding Gathers look up 8-bit rows and dequantize them.
/// Standard ONNX: ONNX Runtime runs it, and so does our runtime, on its integer kernels.
/// </summary>
public static class DynamicQuantizer
{
    private const int MinimumOpset = 11; // DynamicQuantizeLinear

    /// <summary>Quantizes a copy of <paramref name="source"/>; the source is not changed.</summary>
    public static QuantizationResult Quantize(OnnxModel source, QuantizationOptions options)
    {
        options.Validate();
        var context = new QuantizationContext(source, options);
        Apply(context);
        return context.Finish();
    }

    internal static void Apply(QuantizationContext context)
    {
        var graph = context.Graph;
        var activations = new Dictionary<string, (string Value, string Scale, string ZeroPoint)>(StringComparer.Ordinal);
        var rewritten = new List<NodeProto>(graph.Node.Count);
        foreach (var node in graph.Node)
        {
            if (node.Domain is not ("" or "ai.onnx") || node.OpType is not ("MatMul" or "Gemm" or "Conv" or "Gather"))
            {
                rewritten.Add(node);
                continue;
            }
            int weightInput = node.OpType == "Gather" ? 0 : 1;
            var weight = weightInput < node.Input.Count ? context.Weights.Find(node.Input[weightInput]) : null;
            string? refusal = context.Opset < MinimumOpset ? $"opset {context.Opset} predates DynamicQuantizeLinear (11)"
                : context.RefuseByOptions(node) ?? context.RefuseWeight(weight) ?? RefuseShape(node, weight!);
            if (refusal is not null)
            {
                // A Gather of anything but a float table (shapes, indices) is not a candidate at all.
                if (node.OpType != "Gather" || weight is not null) context.Keep(node, refusal);
                rewritten.Add(node);
                continue;
            }

            if (node.OpType == "Gather")
            {
                var table = context.Int8.Get(weight!, WeightOnlyQuantizer.ChannelAxis(node, weight!, context));
                string gathered = context.Names.Next(node.Output[0] + "_quantized");
                rewritten.Add(OnnxBuild.Node("Gather", context.Names.Next(QuantizationContext.Label(node) + "_quantized"), [table.Value, node.Input[1]], [gathered]).With("axis", 0));
                rewritten.Add(WeightOnlyQuantizer.DequantizeAfterGather(context, table, gathered, node.Output[0], QuantizationContext.Label(node)));
                context.Quantized(node, "8-bit rows looked up, then dequantized");
                continue;
            }

            string a = node.Input[0];
            if (!activations.TryGetValue(a, out var qa))
            {
                qa = (context.Names.Next(a + "_quantized"), context.Names.Next(a + "_scale"), context.Names.Next(a + "_zero_point"));
                activations[a] = qa;
                rewritten.Add(OnnxBuild.Node("DynamicQuantizeLinear", context.Names.Next(a + "_QuantizeLinear"), [a], [qa.Value, qa.Scale, qa.ZeroPoint]));
            }
            if (node.OpType == "Conv") rewritten.AddRange(Convolution(context, node, weight!, qa));
            else rewritten.AddRange(MatrixProduct(context, node, weight!, qa));
        }
        graph.Node.Clear();
        graph.Node.AddRange(rewritten);
    }

    private static string? RefuseShape(NodeProto node, FloatWeight weight)
    {
        switch (node.OpType)
        {
            case "MatMul":
                return weight.Dims.Length != 2 ? "the weight is not 2-D" : null;
            case "Gemm":
                if (WeightOnlyQuantizer.Attribute(node, "transA") == 1) return "Gemm with transA is left float";
                return weight.Dims.Length != 2 ? "the weight is not 2-D" : null;
            case "Conv":
                return weight.Dims.Length < 3 ? "the weight has no spatial dimensions" : null;
            default: // Gather
                return WeightOnlyQuantizer.GatherAxis(node) != 0 || weight.Dims.Length != 2 ? "only row lookups (axis 0) in a 2-D table are quantized" : null;
        }
    }

    /// <summary>MatMul or Gemm (as A x B [+ C]) on MatMulInteger, then Cast and the scale product.</summary>
    private static IEnumerable<NodeProto> MatrixProduct(QuantizationContext context, NodeProto node, FloatWeight weight,
        (string Value, string Scale, string ZeroPoint) qa)
    {
        string label = QuantizationContext.Label(node);
        var names = context.Names;
        bool gemm = node.OpType == "Gemm";
        if (gemm && WeightOnlyQuantizer.Attribute(node, "transB") == 1) weight = Transposed(weight);
        var q = context.Int8.Get(weight, context.Options.PerChannel ? 1 : null);

        string y = node.Output[0];
        float alpha = gemm ? node.Attribute.FirstOrDefault(t => t.Name == "alpha")?.F ?? 1f : 1f;
        float beta = gemm ? node.Attribute.FirstOrDefault(t => t.Name == "beta")?.F ?? 1f : 1f;
        bool bias = gemm && node.Input.Count > 2 && node.Input[2].Length > 0;
        string product = names.Next(y + "_MatMulInteger"), asFloat = names.Next(y + "_float"), scale = names.Next(y + "_scale");
        string scaled = bias ? names.Next(y + "_product") : y;

        yield return OnnxBuild.Node("MatMulInteger", names.Next(label + "_quant"), [qa.Value, q.Value, qa.ZeroPoint, q.ZeroPoint], [product]);
        yield return OnnxBuild.Node("Cast", names.Next(label + "_cast"), [product], [asFloat]).With("to", (long)TensorProto.Types.DataType.Float);
        string weightScale = q.Scale;
        if (alpha != 1f)
        {
            weightScale = names.Next(q.Scale + "_alpha");
            context.Graph.Initializer.Add(OnnxBuild.Floats(weightScale, q.Axis is null ? [] : [q.Scales.Length], Array.ConvertAll(q.Scales, s => s * alpha)));
        }
        yield return OnnxBuild.Node("Mul", names.Next(label + "_scales"), [qa.Scale, weightScale], [scale]);
        yield return OnnxBuild.Node("Mul", names.Next(label + "_output"), [asFloat, scale], [scaled]);
        if (bias)
        {
            string c = node.Input[2];
            if (beta != 1f)
            {
                string betaName = names.Next(label + "_beta"), scaledBias = names.Next(c + "_beta");
                context.Graph.Initializer.Add(OnnxBuild.Floats(betaName, [], [beta]));
                yield return OnnxBuild.Node("Mul", names.Next(label + "_bias_beta"), [c, betaName], [scaledBias]);
                c = scaledBias;
            }
            yield return OnnxBuild.Node("Add", names.Next(label + "_bias"), [scaled, c], [y]);
        }
        context.Quantized(node, $"int8 weight ({(q.Axis is null ? "per tensor" : "per column")}), uint8 activation quantized at run time");
    }

    /// <summary>Conv on ConvInteger (same attributes), then Cast, the scale product per output channel, and the bias.</summary>
    private static IEnumerable<NodeProto> Convolution(QuantizationContext context, NodeProto node, FloatWeight weight,
        (string Value, string Scale, string ZeroPoint) qa)
    {
        string label = QuantizationContext.Label(node);
        var names = context.Names;
        // Per-channel only where the zero points agree (symmetric): ONNX Runtime's ConvInteger refuses per-channel ones.
        bool perChannel = context.Options.PerChannel && context.Options.SymmetricWeights;
        var q = context.Int8.Get(weight, perChannel ? 0 : null);
        string y = node.Output[0];
        bool bias = node.Input.Count > 2 && node.Input[2].Length > 0;
        string product = names.Next(y + "_ConvInteger"), asFloat = names.Next(y + "_float"), scale = names.Next(y + "_scale");
        string scaled = bias ? names.Next(y + "_product") : y;

        // ONNX Runtime's ConvInteger takes only a per-tensor weight zero point; symmetric weights have zero point 0 in
        // every channel, so one scalar does, and the per-channel scales go into the Mul below.
        string weightZeroPoint = q.ZeroPoint;
        if (q.Axis is not null && q.ZeroPoints.Distinct().Count() == 1)
        {
            weightZeroPoint = names.Next(q.ZeroPoint + "_scalar");
            var type = context.Options.WeightType == TensorElementType.Int8 ? TensorProto.Types.DataType.Int8 : TensorProto.Types.DataType.Uint8;
            context.Graph.Initializer.Add(OnnxBuild.Tensor(weightZeroPoint, type, [], [unchecked((byte)q.ZeroPoints[0])]));
        }
        var convolution = OnnxBuild.Node("ConvInteger", names.Next(label + "_quant"), [qa.Value, q.Value, qa.ZeroPoint, weightZeroPoint], [product]);
        convolution.Attribute.AddRange(node.Attribute.Select(attribute => attribute.Clone()));
        yield return convolution;
        yield return OnnxBuild.Node("Cast", names.Next(label + "_cast"), [product], [asFloat]).With("to", (long)TensorProto.Types.DataType.Float);
        // The weight scales broadcast over [N, C, spatial...] as [C, 1, ...].
        string weightScale = q.Scale;
        if (q.Axis is not null)
        {
            weightScale = names.Next(q.Scale + "_per_channel");
            long[] dims = [q.Scales.Length, .. Enumerable.Repeat(1L, weight.Dims.Length - 2)];
            context.Graph.Initializer.Add(OnnxBuild.Floats(weightScale, dims, q.Scales));
        }
        yield return OnnxBuild.Node("Mul", names.Next(label + "_scales"), [qa.Scale, weightScale], [scale]);
        yield return OnnxBuild.Node("Mul", names.Next(label + "_output"), [asFloat, scale], [scaled]);
        if (bias)
        {
            var b = context.Weights.Find(node.Input[2]);
            string biasName;
            if (b is not null)
            {
                biasName = names.Next(node.Input[2] + "_per_channel");
                long[] dims = [b.Values.Length, .. Enumerable.Repeat(1L, weight.Dims.Length - 2)];
                context.Graph.Initializer.Add(OnnxBuild.Floats(biasName, dims, b.Values));
                context.Replaced(b);
            }
            else
            {
                // A computed bias: reshape it at run time.
                biasName = names.Next(node.Input[2] + "_per_channel");
                string shape = names.Next(label + "_bias_shape");
                context.Graph.Initializer.Add(OnnxBuild.Tensor(shape, TensorProto.Types.DataType.Int64, [weight.Dims.Length - 1],
                    System.Runtime.InteropServices.MemoryMarshal.AsBytes<long>([-1, .. Enumerable.Repeat(1L, weight.Dims.Length - 2)])));
                yield return OnnxBuild.Node("Reshape", names.Next(label + "_bias_reshape"), [node.Input[2], shape], [biasName]);
            }
            yield return OnnxBuild.Node("Add", names.Next(label + "_bias"), [scaled, biasName], [y]);
        }
        context.Quantized(node, $"int8 weight ({(q.Axis is null ? "per tensor" : "per output channel")}), uint8 activation quantized at run time");
    }

    private static FloatWeight Transposed(FloatWeight weight)
    {
        int rows = (int)weight.Dims[0], columns = (int)weight.Dims[1];
        var values = new float[weight.Values.Length];
        for (int i = 0; i < rows; i++)
        {
            for (int j = 0; j < columns; j++) values[j * rows + i] = weight.Values[i * columns + j];
        }
        return weight with { Value = weight.Value + "^T", Dims = [columns, rows], Values = values };
    }
}
