using Quantize.Kernels.Models.Onnx;

namespace Quantize.Core.Quantization.Graph;

/// <summary>
/// Raises an old model's default-domain opset to one the quantization ops need (DequantizeLinear 10, DynamicQuantizeLinear
/// 11, per-axis 13), as ONNX Runtime's quantizer does, but only when every op in the graph means the same at the new
/// version (checked per op, with the one attribute change it needs made); otherwise it says which op stands in the way.
/// </summary>
internal static class OpsetUpgrade
{
    /// <summary>Ops whose behaviour (with the attributes a model of opset 7+ can carry) is the same up to opset 13.</summary>
    private static readonly HashSet<string> Unchanged = new(StringComparer.Ordinal)
    {
        "Conv", "ConvTranspose", "Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "Add", "Sub", "Mul", "Div", "Sum", "Max", "Min",
        "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization", "Gemm", "MatMul", "Flatten",
        "Concat", "Reshape", "Transpose", "Identity", "Dropout", "Exp", "Log", "Sqrt", "Abs", "Neg", "Reciprocal", "Pow",
        "LRN", "InstanceNormalization", "Shape", "Gather", "Cast", "Constant", "Unsqueeze", "Squeeze", "Elu", "Selu",
        "Softplus", "Softsign", "HardSigmoid", "Floor", "Ceil", "Not", "And", "Or", "Xor", "Equal", "Less", "Greater", "Where",
        "Erf", "ReduceMean", "ReduceMax", "ReduceMin", "ArgMax", "ArgMin", "Tile", "Expand",
    };

    /// <summary>Upgrades <paramref name="model"/> in place to <paramref name="target"/>; returns null, or why it cannot.</summary>
    public static string? TryUpgrade(ModelProto model, long target)
    {
        long current = OnnxBuild.DefaultOpset(model);
        if (current >= target) return null;
        if (current < 7) return $"opset {current} is older than 7; convert the model to opset {target} first";
        foreach (var node in model.Graph.Node)
        {
            if (node.Domain is not ("" or "ai.onnx")) continue;
            string? blocker = Blocker(node, current);
            if (blocker is not null)
                return $"the model imports opset {current} and quantization needs {target}, but {blocker}; convert the model to opset {target} first";
        }

        foreach (var node in model.Graph.Node.Where(n => n.OpType == "BatchNormalization" && n.Domain is "" or "ai.onnx"))
        {
            // Opset 9 dropped 'spatial' (1 was the only meaning kept).
            var spatial = node.Attribute.FirstOrDefault(a => a.Name == "spatial");
            if (spatial is not null) node.Attribute.Remove(spatial);
        }
        var import = model.OpsetImport.FirstOrDefault(o => o.Domain is "" or "ai.onnx");
        if (import is null) model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = target });
        else import.Version = target;
        // Opset 13 needs IR version 7. From IR 4 on, an initializer listed as a graph input may be overridden by the
        // caller; in an older model it could not, so such inputs are dropped to keep the weights constant.
        if (model.IrVersion < 4)
        {
            var initializers = model.Graph.Initializer.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
            foreach (var input in model.Graph.Input.Where(i => initializers.Contains(i.Name)).ToList()) model.Graph.Input.Remove(input);
        }
        model.IrVersion = Math.Max(model.IrVersion, target >= 13 ? 7 : 6);
        return null;
    }

    private static string? Blocker(NodeProto node, long current)
    {
        if (!Unchanged.Contains(node.OpType)) return $"{node.OpType} ('{node.Name}') changed meaning between those versions";
        bool Has(string name) => node.Attribute.Any(a => a.Name == name);
        switch (node.OpType)
        {
            case "BatchNormalization" when node.Attribute.FirstOrDefault(a => a.Name == "spatial") is { I: 0 }:
                return $"BatchNormalization '{node.Name}' uses spatial=0";
            case "Unsqueeze" or "Squeeze" when current < 13:
                // Opset 13 moved their axes from an attribute to an input.
                return Has("axes") ? $"{node.OpType} ('{node.Name}') takes its axes as an input from opset 13" : null;
            case "Dropout" when current < 12 && Has("ratio"):
                return $"Dropout ('{node.Name}') takes its ratio as an input from opset 12";
            default:
                return null;
        }
    }
}
