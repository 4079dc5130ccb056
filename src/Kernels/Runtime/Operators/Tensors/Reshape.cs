namespace Quantize.Kernels.Runtime.Operators;

/// <summary>Reshape: the same elements under a new shape (0 copies the input's dimension unless allowzero, -1 is inferred). A view.</summary>
[OnnxOperator("Reshape", 1)]
[OnnxOperator("Reshape", 5)]
internal sealed class Reshape(long[]? fixedShape, bool allowZero) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        bool allowZero = context.Opset >= 14 && context.Int("allowzero", 0) != 0;
        if (context.Opset < 5)
            return new Reshape(context.Ints("shape") ?? throw context.Unsupported("Reshape without a shape attribute"), allowZero);
        if (!context.HasInput(1)) throw context.Unsupported("Reshape without a shape input");
        // A shape known at load (the usual case) is read once.
        var constant = context.ConstantInput(1);
        return new Reshape(constant is null ? null : Elements.Integers(constant, context.Label, "the shape"), allowZero);
    }

    public override void Run(OperatorCall call)
    {
        var input = call.Input(0);
        var shape = fixedShape ?? Elements.Integers(call.Input(1), call.Context.Node, "the shape");
        call.OutputView(0, input, Resolve(input.Shape, input.Length, shape, allowZero, call.Context.Node));
    }

    /// <summary>The output shape for ONNX's requested <paramref name="shape"/>.</summary>
    internal static int[] Resolve(ReadOnlySpan<int> input, int count, ReadOnlySpan<long> shape, bool allowZero, string node)
    {
        var dims = new int[shape.Length];
        int inferred = -1;
        long known = 1;
        for (int i = 0; i < shape.Length; i++)
        {
            long value = shape[i];
            if (value == -1)
            {
                if (inferred >= 0) throw Invalid(node, input, shape, "more than one -1");
                inferred = i;
                continue;
            }
            if (value == 0 && !allowZero)
            {
                if (i >= input.Length) throw Invalid(node, input, shape, $"0 at axis {i} has no input dimension to copy");
                dims[i] = input[i];
            }
            else if (value < 0 || value > int.MaxValue)
            {
                throw Invalid(node, input, shape, $"dimension {value}");
            }
            else
            {
                dims[i] = (int)value;
            }
            known *= dims[i];
        }
        if (inferred >= 0)
        {
            if (known == 0 || count % known != 0) throw Invalid(node, input, shape, "the -1 dimension cannot be inferred");
            dims[inferred] = (int)(count / known);
        }
        else if (known != count)
        {
            throw Invalid(node, input, shape, $"{known} elements, not {count}");
        }
        return dims;
    }

    private static InvalidOperationException Invalid(string node, ReadOnlySpan<int> input, ReadOnlySpan<long> shape, string why) =>
        new($"{node}: cannot reshape {Tensor.Format(input)} to [{string.Join(", ", shape.ToArray())}]: {why}.");
}

/// <summary>Flatten: the same elements as a matrix [product of the axes before axis, product of the rest]. A view.</summary>
[OnnxOperator("Flatten", 1)]
internal sealed class Flatten(long axis) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        long axis = context.Int("axis", 1);
        if (axis < 0 && context.Opset < 11) throw context.Unsupported($"negative axis {axis} before opset 11");
        return new Flatten(axis);
    }

    public override void Run(OperatorCall call)
    {
        var input = call.Input(0);
        int rank = input.Rank;
        if (axis < -rank || axis > rank)
            throw new InvalidOperationException($"{call.Context.Node}: axis {axis} is out of range for rank {rank}.");
        int split = (int)(axis < 0 ? axis + rank : axis);
        call.OutputView(0, input, [Elements.Product(input.Shape, 0, split), Elements.Product(input.Shape, split, rank)]);
    }
}
