namespace Quantize.Kernels.Runtime.Operators;

/// <summary>Transpose: the axes permuted by perm (default: reversed). A view when only size-1 axes move.</summary>
[OnnxOperator("Transpose", 1)]
internal sealed class Transpose(int[]? perm) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        var given = context.Ints("perm");
        if (given is null) return new Transpose(null);
        var perm = new int[given.Length];
        var seen = new bool[given.Length];
        for (int i = 0; i < given.Length; i++)
        {
            if (given[i] < 0 || given[i] >= given.Length || seen[given[i]])
                throw context.Unsupported($"perm [{string.Join(", ", given)}] is not a permutation");
            seen[given[i]] = true;
            perm[i] = (int)given[i];
        }
        return new Transpose(perm);
    }

    public override void Run(OperatorCall call)
    {
        var input = call.Input(0);
        int rank = input.Rank;
        if (perm is not null && perm.Length != rank)
            throw new InvalidOperationException($"{call.Context.Node}: perm has {perm.Length} axes, the input {input} has {rank}.");
        var inputStrides = Elements.Strides(input.Shape);
        var shape = new int[rank];
        var strides = new int[rank];
        bool inOrder = true;
        int last = -1;
        for (int i = 0; i < rank; i++)
        {
            int from = perm is null ? rank - 1 - i : perm[i];
            shape[i] = input.Shape[from];
            strides[i] = inputStrides[from];
            if (shape[i] != 1)
            {
                inOrder &= from > last;
                last = from;
            }
        }
        if (inOrder)
        {
            call.OutputView(0, input, shape);
            return;
        }
        var output = call.Output(0, input.ElementType, shape);
        var move = new Move(input, output, strides, call.Context.DegreeOfParallelism);
        Elements.Dispatch(input, ref move);
    }

    private readonly struct Move(Tensor input, Tensor output, int[] strides, int threads) : IElementMove
    {
        public void Run<T>() =>
            StridedCopy.Run<T>(input, strides, output, Elements.Strides(output.Shape), output.ShapeArray, threads);
    }
}
