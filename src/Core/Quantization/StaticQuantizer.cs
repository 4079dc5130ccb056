using Quantize.Core.Calibration;
using Quantize.Core.Quantization.Graph;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Quantization;

namespace Quantize.Core.Quantization;

/// <summary>
/// The <c>static</c> mode, in the QDQ format ONNX Runtime's quantize_static writes: every activation that a
/// quantized op reads or writes gets a QuantizeLinear/DequantizeLinear pair with parameters from calibration; weights
/// are int8 per output channel behind DequantizeLinear; Conv and Gemm biases are int32 with scale = activation scale x
/// weight scale. Relu/Clip after an op share its quantized output (so the pair goes after them); MaxPool keeps its
/// input's parameters (max commutes with the affine map). Graph outputs stay float.
/// </summary>
internal static class StaticQuantizer
{
    private static readonly HashSet<string> WeightOps = ["Conv", "MatMul", "Gemm"];
    private static readonly HashSet<string> ActivationOps = ["Add", "MaxPool", "AveragePool", "GlobalAveragePool"];

    /// <summary>The activations the mode would quantize in <paramref name="model"/>, in graph order.</summary>
    public static List<string> Activations(OnnxModel model, QuantizationOptions options, IReadOnlySet<string> keepFloat)
    {
        var plan = Plan(model, options, keepFloat);
        return plan.Activations;
    }

    /// <summary>Rewrites the context's graph; <paramref name="ranges"/> holds every activation's calibrated range.</summary>
    public static void Apply(QuantizationContext context, IReadOnlyDictionary<string, ActivationRange> ranges, IReadOnlySet<string> keepFloat)
    {
        var options = context.Options;
        var graph = context.Graph;
        var plan = Plan(context.Model, options, keepFloat);
        var activationRange = QuantizedRange.Of(options.ActivationType);
        var type = options.ActivationType == TensorElementType.UInt8 ? TensorProto.Types.DataType.Uint8 : TensorProto.Types.DataType.Int8;

        // Parameters per activation; MaxPool outputs reuse their input's.
        var parameters = new Dictionary<string, QuantizationParameters>(StringComparer.Ordinal);
        foreach (string value in plan.Activations)
        {
            string from = plan.SharesParameters.TryGetValue(value, out var input) && parameters.ContainsKey(input) ? input : value;
            if (from != value)
            {
                parameters[value] = parameters[from];
                continue;
            }
            if (!ranges.TryGetValue(value, out var range)) continue;
            parameters[value] = QuantizationParameters.FromRange(range.Min, range.Max, activationRange, options.SymmetricActivations);
        }

        // One QuantizeLinear -> DequantizeLinear pair per activation, right after its producer (or first, for inputs).
        var dequantized = new Dictionary<string, string>(StringComparer.Ordinal);
        var pairs = new Dictionary<string, List<NodeProto>>(StringComparer.Ordinal);
        foreach (var (value, p) in parameters)
        {
            string scale = context.Names.Next(value + "_scale"), zeroPoint = context.Names.Next(value + "_zero_point");
            graph.Initializer.Add(OnnxBuild.Floats(scale, [], [p.Scale]));
            graph.Initializer.Add(OnnxBuild.Tensor(zeroPoint, type, [], [unchecked((byte)p.ZeroPoint)]));
            string quantized = context.Names.Next(value + "_QuantizeLinear_Output"), restored = context.Names.Next(value + "_DequantizeLinear_Output");
            pairs[value] =
            [
                OnnxBuild.Node("QuantizeLinear", context.Names.Next(value + "_QuantizeLinear"), [value, scale, zeroPoint], [quantized]),
                OnnxBuild.Node("DequantizeLinear", context.Names.Next(value + "_DequantizeLinear"), [quantized, scale, zeroPoint], [restored]),
            ];
            dequantized[value] = restored;
        }

        var rewritten = new List<NodeProto>(graph.Node.Count * 2);
        foreach (string input in graph.Input.Select(i => i.Name).Where(pairs.ContainsKey)) rewritten.AddRange(pairs[input]);
        foreach (var node in graph.Node)
        {
            string firstInput = node.Input.Count > 0 ? node.Input[0] : "";
            // Every reader of a quantized activation reads its dequantized form.
            for (int i = 0; i < node.Input.Count; i++)
            {
                if (dequantized.TryGetValue(node.Input[i], out var restored)) node.Input[i] = restored;
            }
            if (plan.Weighted.TryGetValue(node, out var weight))
            {
                QuantizeWeightAndBias(context, node, weight, parameters.TryGetValue(firstInput, out var x) ? x : null, rewritten);
            }
            else if (plan.Candidates.Contains(node))
            {
                context.Quantized(node, "runs on 8-bit activations (QDQ)");
            }
            rewritten.Add(node);
            foreach (var output in node.Output)
            {
                if (pairs.TryGetValue(output, out var pair)) rewritten.AddRange(pair);
            }
        }
        foreach (var (node, reason) in plan.Refused) context.Keep(node, reason);
        graph.Node.Clear();
        graph.Node.AddRange(rewritten);
    }

    private static void QuantizeWeightAndBias(QuantizationContext context, NodeProto node, FloatWeight weight,
        QuantizationParameters? x, List<NodeProto> rewritten)
    {
        int? axis = context.Options.PerChannel ? node.OpType switch
        {
            "Conv" => 0,
            "MatMul" => 1,
            _ => WeightOnlyQuantizer.Attribute(node, "transB") == 1 ? 0 : 1,
        } : null;
        var q = context.Int8.Get(weight, axis);
        string label = QuantizationContext.Label(node);
        string restored = context.Names.Next(node.Input[1] + "_DequantizeLinear_Output");
        rewritten.Add(WeightOnlyQuantizer.Dequantize(context, q, restored, label));
        node.Input[1] = restored;

        // The bias in int32 at scale x_scale * w_scale, so that it adds straight onto the integer accumulator.
        string how = $"int8 weight {(axis is null ? "per tensor" : "per channel")}, 8-bit activations (QDQ)";
        if (node.OpType is "Conv" or "Gemm" && node.Input.Count > 2 && context.Weights.Find(node.Input[2]) is { } bias && bias.Dims.Length == 1
            && x is { } input && (node.OpType == "Conv" || WeightOnlyQuantizer.Attribute(node, "beta") is null))
        {
            int channels = bias.Values.Length;
            var scales = new float[channels];
            var values = new int[channels];
            for (int c = 0; c < channels; c++)
            {
                scales[c] = input.Scale * q.Scales[q.Scales.Length == 1 ? 0 : c];
                double v = Math.Round(bias.Values[c] / (double)scales[c], MidpointRounding.ToEven);
                values[c] = (int)Math.Clamp(v, int.MinValue, int.MaxValue);
            }
            string name = context.Names.Next(bias.Root.Name + "_quantized"), scale = context.Names.Next(bias.Root.Name + "_scale"), zero = context.Names.Next(bias.Root.Name + "_zero_point");
            context.Graph.Initializer.Add(OnnxBuild.Int32s(name, [channels], values));
            context.Graph.Initializer.Add(OnnxBuild.Floats(scale, [channels], scales));
            context.Graph.Initializer.Add(OnnxBuild.Int32s(zero, [channels], new int[channels]));
            string biasOut = context.Names.Next(node.Input[2] + "_DequantizeLinear_Output");
            rewritten.Add(OnnxBuild.Node("DequantizeLinear", context.Names.Next(label + "_bias_DequantizeLinear"), [name, scale, zero], [biasOut]).With("axis", 0));
            node.Input[2] = biasOut;
            context.Replaced(bias);
            how += ", int32 bias";
        }
        context.Quantized(node, how);
    }

    private sealed record StaticPlan(List<string> Activations, Dictionary<NodeProto, FloatWeight> Weighted, HashSet<NodeProto> Candidates,
        Dictionary<string, string> SharesParameters, List<(NodeProto, string)> Refused);

    /// <summary>Which nodes run quantized and which activations get a QDQ pair.</summary>
    private static StaticPlan Plan(OnnxModel model, QuantizationOptions options, IReadOnlySet<string> keepFloat)
    {
        var graph = model.Graph;
        var weights = new ConstantWeights(model);
        var selection = new NodeSelection(options, keepFloat);
        var floats = FloatValues.Infer(model);
        var constants = graph.Initializer.Select(t => t.Name).Concat(graph.Node.Where(n => n.OpType == "Constant").SelectMany(n => n.Output))
            .ToHashSet(StringComparer.Ordinal);
        var consumers = graph.Node.SelectMany(n => n.Input.Select(i => (i, n))).GroupBy(p => p.i).ToDictionary(g => g.Key, g => g.Select(p => p.n).ToList(), StringComparer.Ordinal);
        var outputs = graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        long opset = OnnxBuild.DefaultOpset(model.Proto);

        var wanted = new List<string>();
        var weighted = new Dictionary<NodeProto, FloatWeight>(ReferenceEqualityComparer.Instance);
        var candidates = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);
        var shares = new Dictionary<string, string>(StringComparer.Ordinal);
        var refused = new List<(NodeProto, string)>();
        foreach (var node in graph.Node)
        {
            if (node.Domain is not ("" or "ai.onnx") || !(WeightOps.Contains(node.OpType) || ActivationOps.Contains(node.OpType))) continue;
            string? refusal = opset < 10 ? $"opset {opset} predates QuantizeLinear (10)" : selection.Refuse(node);
            FloatWeight? weight = null;
            if (refusal is null && WeightOps.Contains(node.OpType))
            {
                weight = node.Input.Count > 1 ? weights.Find(node.Input[1]) : null;
                refusal = weight is null ? "the weight is not a constant float tensor"
                    : weight.Values.LongLength < options.MinimumSize ? $"the weight has fewer than {options.MinimumSize} elements"
                    : node.OpType == "MatMul" && weight.Dims.Length != 2 ? "the weight is not 2-D"
                    : node.OpType == "Gemm" && WeightOnlyQuantizer.Attribute(node, "transA") == 1 ? "Gemm with transA is left float"
                    : weight.Values.Any(v => !float.IsFinite(v)) ? "the weight holds NaN or infinite values"
                    : null;
            }
            var inputs = WeightOps.Contains(node.OpType) ? [node.Input[0]] : node.Input.Where(i => i.Length > 0).ToList();
            if (refusal is null && inputs.Any(i => constants.Contains(i))) refusal = "an input is a constant (it runs in float)";
            if (refusal is null && inputs.Any(i => !floats.Contains(i))) refusal = "an input is not known to be float";
            if (refusal is not null)
            {
                if (weight is not null || node.OpType != "Gather") refused.Add((node, refusal));
                continue;
            }

            candidates.Add(node);
            if (weight is not null) weighted[node] = weight;
            wanted.AddRange(inputs);
            // The output: after a lone Relu/Clip reader, which then shares the quantized output.
            string output = node.Output[0];
            if (consumers.TryGetValue(output, out var readers) && readers.Count == 1 && readers[0].OpType is "Relu" or "Clip" && !outputs.Contains(output)
                && selection.Refuse(readers[0]) is null)
                output = readers[0].Output[0];
            if (outputs.Contains(output)) continue;
            wanted.Add(output);
            if (node.OpType == "MaxPool") shares[output] = node.Input[0];
        }
        var activations = wanted.Where(v => !outputs.Contains(v) && floats.Contains(v)).Distinct(StringComparer.Ordinal).ToList();
        return new StaticPlan(activations, weighted, candidates, shares, refused);
    }
}

/// <summary>Which values of a graph are float32, by propagating types from inputs and initializers through common ops.</summary>
internal static class FloatValues
{
    private static readonly HashSet<string> FromFirstInput =
    [
        "Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh", "Erf", "Gelu", "Softmax", "LogSoftmax", "Exp", "Log", "Sqrt", "Neg", "Abs", "Reciprocal",
        "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization", "LayerNormalization", "Reshape", "Flatten",
        "Transpose", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Slice", "Pad", "Resize", "Tile", "Expand", "ReduceMean", "ReduceSum",
        "ReduceMax", "ReduceMin", "Pow", "HardSigmoid", "HardSwish", "Split", "Conv", "ConvTranspose", "MatMul", "Gemm", "DequantizeLinear",
    ];

    public static HashSet<string> Infer(OnnxModel model)
    {
        var graph = model.Graph;
        var floats = new HashSet<string>(StringComparer.Ordinal);
        foreach (var input in graph.Input)
        {
            if (input.Type?.TensorType?.ElemType == (int)TensorProto.Types.DataType.Float) floats.Add(input.Name);
        }
        foreach (var t in graph.Initializer)
        {
            if (t.DataType == (int)TensorProto.Types.DataType.Float) floats.Add(t.Name);
        }
        foreach (var node in graph.Node)
        {
            bool isFloat = node.OpType switch
            {
                "Constant" => node.Attribute.FirstOrDefault(a => a.Name == "value")?.T?.DataType == (int)TensorProto.Types.DataType.Float,
                "Cast" => node.Attribute.FirstOrDefault(a => a.Name == "to")?.I == (long)TensorProto.Types.DataType.Float,
                "Add" or "Sub" or "Mul" or "Div" or "Concat" or "Where" or "Max" or "Min" or "Sum" => node.Input.Any(floats.Contains),
                "Gather" => node.Input.Count > 0 && floats.Contains(node.Input[0]),
                _ when FromFirstInput.Contains(node.OpType) => node.Input.Count > 0 && floats.Contains(node.Input[0]),
                _ => false,
            };
            if (!isFloat || node.Domain is not ("" or "ai.onnx")) continue;
            // Split has several float outputs; the others have one that matters.
            foreach (var output in node.OpType == "Split" ? node.Output : node.Output.Take(1)) floats.Add(output);
        }
        return floats;
    }
}
