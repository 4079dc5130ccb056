using Quantize.Core.Quantization.Graph;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;

namespace Quantize.Core.Quantization;

/// <summary>
/// SmoothQuant's equivalent rewrite (Xiao et al., 2023): for a MatMul input X with a few large channels, Y = X W equals
/// (X diag(1/s)) (diag(s) W). Dividing X's channels by s flattens the outliers that make one per-tensor activation
/// scale coarse, and per-column weight scales absorb the larger rows of diag(s) W. The per-channel maxima of X come
/// from running the float model on calibration samples, in memory of one float per channel.
/// </summary>
internal static class ActivationSmoothing
{
    /// <summary>The per-channel maxima |X| of every MatMul input that smoothing may apply to.</summary>
    public static Dictionary<string, float[]> MeasureChannels(OnnxModel source, QuantizationOptions options, SampleSource samples)
    {
        var inputs = Candidates(source, options).Select(c => c.Input).Distinct(StringComparer.Ordinal).ToList();
        var maxima = new Dictionary<string, float[]>(StringComparer.Ordinal);
        if (inputs.Count == 0) return maxima;
        var probe = source.Proto.Clone();
        foreach (var name in inputs)
        {
            if (!probe.Graph.Output.Any(o => o.Name == name)) probe.Graph.Output.Add(new ValueInfoProto { Name = name });
        }
        using var session = ModelSession.Create(new OnnxModel(probe, source.Source, source.BaseDirectory), new SessionOptions { Threads = options.Threads });
        int count = 0;
        foreach (var sample in samples())
        {
            if (options.CalibrationSamples > 0 && count >= options.CalibrationSamples) break;
            var outputs = session.Run(sample, inputs);
            foreach (var name in inputs)
            {
                var x = outputs[name];
                if (x.ElementType != Kernels.Models.TensorElementType.Float32 || x.Rank == 0) continue;
                int channels = x.Shape[^1];
                var max = maxima.TryGetValue(name, out var m) ? m : maxima[name] = new float[channels];
                if (max.Length != channels) continue;
                var values = x.AsSpan<float>();
                for (int i = 0; i < values.Length; i++)
                {
                    float a = MathF.Abs(values[i]);
                    if (a > max[i % channels]) max[i % channels] = a;
                }
            }
            count++;
        }
        return maxima;
    }

    /// <summary>A copy of <paramref name="source"/> with the smoothing applied where <paramref name="maxima"/> are known.</summary>
    public static OnnxModel Apply(OnnxModel source, QuantizationOptions options, IReadOnlyDictionary<string, float[]> maxima, IReadOnlySet<string> keepFloat)
    {
        var proto = source.Proto.Clone();
        var model = new OnnxModel(proto, source.Source, source.BaseDirectory);
        var names = new GraphNames(proto.Graph);
        var candidates = Candidates(model, options).Where(c => !keepFloat.Contains(QuantizationContext.Label(c.Node))).ToList();
        foreach (var group in candidates.GroupBy(c => c.Input, StringComparer.Ordinal))
        {
            if (!maxima.TryGetValue(group.Key, out var activation)) continue;
            int k = activation.Length;
            if (group.Any(c => c.Weight.Dims[0] != k)) continue;

            // The weight side of s: each row's largest magnitude over every MatMul that reads X.
            var rowMax = new float[k];
            foreach (var (_, _, weight) in group)
            {
                int n = (int)weight.Dims[1];
                for (int i = 0; i < k; i++)
                {
                    for (int j = 0; j < n; j++) rowMax[i] = MathF.Max(rowMax[i], MathF.Abs(weight.Values[i * n + j]));
                }
            }
            var s = new float[k];
            var inverse = new float[k];
            for (int i = 0; i < k; i++)
            {
                // Dead channels (never active, or zero rows) keep s = 1.
                s[i] = activation[i] > 0 && rowMax[i] > 0
                    ? (float)Math.Clamp(Math.Pow(activation[i], options.EffectiveSmoothing) / Math.Pow(rowMax[i], 1 - options.EffectiveSmoothing), 1e-4, 1e4)
                    : 1f;
                inverse[i] = 1f / s[i];
            }

            string smoothed = names.Next(group.Key + "_smoothed"), divisor = names.Next(group.Key + "_smoothing");
            proto.Graph.Initializer.Add(OnnxBuild.Floats(divisor, [k], inverse));
            var mul = OnnxBuild.Node("Mul", names.Next(group.Key + "_Smooth"), [group.Key, divisor], [smoothed]);
            int first = group.Min(c => proto.Graph.Node.IndexOf(c.Node));
            proto.Graph.Node.Insert(first, mul);
            foreach (var (node, _, weight) in group)
            {
                int n = (int)weight.Dims[1];
                var scaled = new float[weight.Values.Length];
                for (int i = 0; i < k; i++)
                {
                    for (int j = 0; j < n; j++) scaled[i * n + j] = weight.Values[i * n + j] * s[i];
                }
                string name = names.Next(weight.Root.Name + "_smoothed");
                proto.Graph.Initializer.Add(OnnxBuild.Floats(name, weight.Dims, scaled));
                node.Input[0] = smoothed;
                node.Input[1] = name;
            }
            DeadValues.Remove(proto.Graph, group.Select(c => c.Weight.Root.Name), group.SelectMany(c => c.Weight.Chain));
        }
        return model;
    }

    /// <summary>MatMuls the dynamic mode will quantize: a constant 2-D float weight, allowed by the options.</summary>
    private static List<(NodeProto Node, string Input, FloatWeight Weight)> Candidates(OnnxModel model, QuantizationOptions options)
    {
        var weights = new ConstantWeights(model);
        var selection = new NodeSelection(options);
        var result = new List<(NodeProto, string, FloatWeight)>();
        foreach (var node in model.Graph.Node)
        {
            if (node.OpType != "MatMul" || node.Domain is not ("" or "ai.onnx") || node.Input.Count < 2 || selection.Refuse(node) is not null) continue;
            var weight = weights.Find(node.Input[1]);
            if (weight is null || weight.Dims.Length != 2 || weight.Values.LongLength < options.MinimumSize) continue;
            result.Add((node, node.Input[0], weight));
        }
        return result;
    }
}
