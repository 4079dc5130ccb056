namespace Quantize.Kernels.Runtime.Operators;

/// <summary>Squeeze: drops size-1 axes (the given ones, or all). A view.</summary>
[OnnxOperator("Squeeze", 1)]
internal sealed class Squeeze(long[]? fixedAxes, bool axesFromInput) : Operator
{
    public static Operator Create(OperatorBuildContext context) => context.Opset < 13
        ? new Squeeze(context.Ints("axes"), axesFromInput: false)
        : new Squeeze(context.ConstantInput(1) is { } axes ? Elements.Integers(axes, context.Label, "axes") : null, axesFromInput: true);

    public override void Run(OperatorCall call)
    {
        var input = call.Input(0);
        var axes = fixedAxes;
        if (axes is null && axesFromInput && call.OptionalInput(1) is { } given) axes = Elements.Integers(given, call.Context.Node, "axes");
        var shape = input.Shape;
        Span<bool> drop = shape.Length <= 16 ? stackalloc bool[16] : new bool[shape.Length];
        drop.Clear();
        int kept = shape.Length;
        if (axes is null)
        {
            for (int d = 0; d < shape.Length; d++)
            {
                if (shape[d] == 1)
                {
                    drop[d] = true;
                    kept--;
                }
            }
        }
        else
        {
            foreach (long a in axes)
            {
                int d = Elements.Axis(a, shape.Length, call.Context.Node);
                if (shape[d] != 1)
                    throw new InvalidOperationException($"{call.Context.Node}: cannot squeeze axis {a} of {Tensor.Format(shape)}: its size is not 1.");
                if (!drop[d]) kept--;
                drop[d] = true;
            }
        }
        var result = new int[kept];
        for (int d = 0, k = 0; d < shape.Length; d++)
        {
            if (!drop[d]) result[k++] = shape[d];
        }
        call.OutputView(0, input, result);
    }
}

/// <summary>Unsqueeze: inserts size-1 axes at the given positions of the output. A view.</summary>
[OnnxOperator("Unsqueeze", 1)]
internal sealed class Unsqueeze(long[]? fixedAxes) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        if (context.Opset < 13)
            return new Unsqueeze(context.Ints("axes") ?? throw context.Unsupported("Unsqueeze without an axes attribute"));
        if (!context.HasInput(1)) throw context.Unsupported("Unsqueeze without an axes input");
        return new Unsqueeze(context.ConstantInput(1) is { } axes ? Elements.Integers(axes, context.Label, "axes") : null);
    }

    public override void Run(OperatorCall call)
    {
        var input = call.Input(0);
        var axes = fixedAxes ?? Elements.Integers(call.Input(1), call.Context.Node, "axes");
        int rank = input.Rank + axes.Length;
        Span<bool> inserted = rank <= 16 ? stackalloc bool[16] : new bool[rank];
        inserted.Clear();
        foreach (long a in axes)
        {
            int d = Elements.Axis(a, rank, call.Context.Node);
            if (inserted[d]) throw new InvalidOperationException($"{call.Context.Node}: axis {a} is given twice.");
            inserted[d] = true;
        }
        var result = new int[rank];
        for (int d = 0, k = 0; d < rank; d++) result[d] = inserted[d] ? 1 : input.Shape[k++];
        call.OutputView(0, input, result);
    }
}
