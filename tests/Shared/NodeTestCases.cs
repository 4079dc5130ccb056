namespace Quantize.Tests;

/// <summary>The ONNX backend test folders under ../shared: onnx-node-tests and the three suites of onnx-node-tests-extra.</summary>
internal static class NodeTestCases
{
    /// <summary>Suite-relative names such as <c>onnx-node-tests/test_abs</c> or <c>onnx-node-tests-extra/simple/test_sign_model</c>.</summary>
    public static IEnumerable<string> All()
    {
        var names = new List<string>();
        foreach (string suite in Suites)
        {
            if (!SharedData.Exists(suite)) continue;
            foreach (string dir in Directory.GetDirectories(Path.Combine(SharedData.Root!, suite)))
            {
                if (File.Exists(Path.Combine(dir, "model.onnx")))
                    names.Add(Path.GetRelativePath(SharedData.Root!, dir).Replace('\\', '/'));
            }
        }
        names.Sort(StringComparer.Ordinal);
        // One placeholder case keeps the theory from being empty; it fails under CI and skips elsewhere.
        return names.Count > 0 ? names : [MissingData];
    }

    /// <summary>Theory data for <see cref="All"/>.</summary>
    public static TheoryData<string> Data() => new(All());

    public const string MissingData = "onnx-node-tests (missing)";

    public static readonly string[] Suites =
    [
        "onnx-node-tests",
        "onnx-node-tests-extra/simple",
        "onnx-node-tests-extra/pytorch-converted",
        "onnx-node-tests-extra/pytorch-operator",
    ];

    /// <summary>The folder of a case; fails or skips the test when the shared data is missing.</summary>
    public static string Folder(string name) =>
        name == MissingData ? SharedData.Require("onnx-node-tests") : SharedData.Require(name);

    /// <summary>The rows of the suite's index.csv that name the case: column name to value.</summary>
    public static IReadOnlyDictionary<string, string> IndexRow(string name)
    {
        string folder = Folder(name);
        string suiteDir = Path.GetDirectoryName(folder)!;
        string testName = Path.GetFileName(folder);
        string[] lines = File.ReadAllLines(Path.Combine(suiteDir, "index.csv"));
        string[] header = lines[0].Split(',');
        foreach (string line in lines.Skip(1))
        {
            string[] cells = line.Split(',');
            if (cells[0] == testName)
                return header.Zip(cells).ToDictionary(p => p.First, p => p.Second);
        }
        throw new InvalidOperationException($"{testName} is not in {suiteDir}/index.csv");
    }
}
