using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>Constant: value (tensor), value_float(s), value_int(s), value_string(s). Folded at load.</summary>
[OnnxOperator("Constant", 1)]
internal sealed class Constant(Tensor value) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        var node = context.Node;
        var attribute = node.Attribute.FirstOrDefault() ?? throw context.Unsupported("Constant without a value");
        Tensor value = attribute.Name switch
        {
            "value" => context.TensorAttribute("value")!,
            "value_float" => Tensor.Create(new[] { attribute.F }),
            "value_floats" => Tensor.Create(attribute.Floats.ToArray(), attribute.Floats.Count),
            "value_int" => Tensor.Create(new[] { attribute.I }),
            "value_ints" => Tensor.Create(attribute.Ints.ToArray(), attribute.Ints.Count),
            "value_string" => Tensor.Create(new[] { attribute.S.ToStringUtf8() }),
            "value_strings" => Tensor.Create(attribute.Strings.Select(s => s.ToStringUtf8()).ToArray(), attribute.Strings.Count),
            _ => throw context.Unsupported($"Constant with attribute '{attribute.Name}'"),
        };
        return new Constant(value);
    }

    public override void Run(OperatorCall call) => call.OutputView(0, value, value.ShapeArray);
}
