using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>ConstantOfShape: a tensor of the given int64 shape filled with the value attribute (default float32 0).</summary>
[OnnxOperator("ConstantOfShape", 9)]
internal sealed class ConstantOfShape(Tensor value) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        var value = context.TensorAttribute("value") ?? Tensor.Create(new[] { 0f }, 1);
        if (value.Length != 1) throw context.Unsupported($"a value of {value.Length} elements (one expected)");
        return new ConstantOfShape(value);
    }

    public override void Run(OperatorCall call)
    {
        string node = call.Context.Node;
        var given = Elements.Integers(call.Input(0), node, "the shape");
        var shape = new int[given.Length];
        for (int i = 0; i < given.Length; i++)
        {
            if (given[i] < 0 || given[i] > int.MaxValue) throw new InvalidOperationException($"{node}: dimension {given[i]} in the shape.");
            shape[i] = (int)given[i];
        }
        var move = new Fill(value, call.Output(0, value.ElementType, shape));
        Elements.Dispatch(value, ref move);
    }

    private readonly struct Fill(Tensor value, Tensor output) : IElementMove
    {
        public void Run<T>() => Elements.Span<T>(output).Fill(Elements.Span<T>(value)[0]);
    }
}
